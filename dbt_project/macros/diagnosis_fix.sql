{#-
  The runbook's quick fix for a diagnosed cause (Common Root Causes Quick Reference) with the
  step 7 mitigation config, as an SQL text expression. `detail` is an SQL expression naming the
  trigger type, tool, feature or model the cause was pinned on.
-#}
{% macro diagnosis_fix(cause, detail) -%}
    case {{ cause }}
        when 'hidden_recompute' then
            case {{ detail }}
                when 'auto_save' then
                    'Rate limit, add confirmation: reduce auto-save frequency, '
                    || 'AUTO_SAVE_INTERVAL_MS = 30000 (was 5000); check recent UX changes.'
                when 'undo' then
                    'Rate limit, add confirmation: UNDO_RATE_LIMIT = "3/minute"; '
                    || 'check recent UX changes to the undo button.'
                else
                    'Rate limit, add confirmation: check for retry loop bugs; '
                    || 'AUTO_SAVE_INTERVAL_MS = 30000 (was 5000); UNDO_RATE_LIMIT = "3/minute".'
            end
        when 'context_bloat' then
            'Truncate, summarize: MAX_CONTEXT_MESSAGES = 10; '
            || 'context = messages[-MAX_CONTEXT_MESSAGES:]; check prompt template changes.'
        when 'output_growth' then
            'Rollback, constrain: roll back the model version or prompt change'
            || coalesce(' (model ' || {{ detail }} || ')', '')
            || '; cap max output tokens, check temperature and output format requirements.'
        when 'feature_concentration' then
            'Throttle, investigate: if FEATURE_FLAGS.get("' || coalesce({{ detail }}, 'expensive_feature')
            || '_throttle"): await rate_limit(user_id, "' || coalesce({{ detail }}, 'expensive_feature')
            || '", limit=10, period="hour"); check the feature''s recent changes, retry logic and tokens.'
        when 'tool_retry_storm' then
            'Circuit breaker, fallback: MAX_TOOL_RETRIES = 2 (was 5); '
            || '@circuit(failure_threshold=3, recovery_timeout=60) around '
            || coalesce({{ detail }}, 'the tool') || ' calls; check the tool''s API status.'
        when 'traffic_increase' then
            'Check for a marketing campaign, viral content, bot traffic (user agents) or an attack: '
            || 'rate limit or block abusive clients; enable the cost cap if it keeps rising.'
    end
{%- endmacro %}
