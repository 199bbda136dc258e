{#-
  Every raw inference event of the incremental window, typed and trimmed, priced when it has no
  cost of its own (stg_model_prices; `cost_source` says provider | priced | unknown), with its verdict:
  `reject_reason` (null when valid) and `is_duplicate`. Order of the rules: validity first, then
  deduplication among valid rows, so an invalid row is always a rejection and a valid copy of an
  already kept event_id is a duplicate. The kept copy of an event_id is the earliest created_at,
  then the smallest row by every other column, so a replay keeps the same row.
  Rows are replaced per `load_hour` (created_at's hour, '-infinity' for a null created_at), so a
  rebuilt hour holds exactly the raw rows of that hour.
-#}
{{
    config(
        materialized='incremental',
        unique_key='load_hour',
        indexes=[
            {'columns': ['load_hour']},
            {'columns': ['created_at']},
            {'columns': ['event_id']},
        ],
    )
}}

{%- set cutoff = changed_hours_cutoff(
    source('raw', 'inference_events'), where='reject_reason is null and not is_duplicate'
) %}

with

source as (
    select * from {{ source('raw', 'inference_events') }}
    where {{ since_cutoff('created_at', cutoff, or_null=true) }}
),

typed as (
    select
        nullif(trim(event_id), '') as event_id,
        created_at,
        user_id,
        session_id,
        trim(feature) as feature,
        lower(trim(trigger_type)) as trigger_type,
        trim(model) as model,
        input_tokens,
        output_tokens,
        {{ as_cost('cost_usd') }} as source_cost_usd,
        lower(trim(cost_source)) as source_cost_source,
        user_agent,
        cached_input_tokens,
        cache_write_tokens,
        reasoning_tokens,
        nullif(lower(trim(provider)), '') as provider,
        lower(trim(model)) as price_model,
        {{ provider_key('provider') }} as price_provider,
        coalesce({{ hour_bucket('created_at') }}, {{ minus_infinity() }}) as load_hour,
        {{ hour_bucket('created_at') }} as hour,
        {{ day_bucket('created_at') }} as day
    from source
),

{{ price_interval_ctes() }},

prices as (
    select * from price_intervals
),

-- Events without a cost of their own: the price in effect at created_at, of the event's
-- provider when it has one for the model, else of the model's default provider.
priced as (
    select
        typed.*,
        case
            when by_provider.model is not null then by_provider.input_usd_per_token
            else by_default.input_usd_per_token
        end as input_usd_per_token,
        case
            when by_provider.model is not null then by_provider.output_usd_per_token
            else by_default.output_usd_per_token
        end as output_usd_per_token,
        case
            when by_provider.model is not null then by_provider.cached_input_usd_per_token
            else by_default.cached_input_usd_per_token
        end as cached_input_usd_per_token,
        case
            when by_provider.model is not null then by_provider.cache_write_usd_per_token
            else by_default.cache_write_usd_per_token
        end as cache_write_usd_per_token
    from typed
    left join prices as by_provider
        on
        typed.source_cost_usd is null
        and typed.price_model = by_provider.model
        and typed.price_provider = by_provider.provider
        and typed.created_at >= by_provider.effective_from
        and typed.created_at < by_provider.effective_to
    left join prices as by_default
        on
        typed.source_cost_usd is null
        and typed.price_model = by_default.model
        and by_default.is_default
        and typed.created_at >= by_default.effective_from
        and typed.created_at < by_default.effective_to
),

costed as (
    select
        *,
        coalesce(source_cost_usd, {{ priced_cost_usd() }}) as cost_usd,
        case
            when source_cost_usd is not null
                then coalesce(nullif(source_cost_source, 'unknown'), 'provider')
            when {{ priced_cost_usd() }} is not null then 'priced'
            else 'unknown'
        end as cost_source
    from priced
),

judged as (
    select
        *,
        case
            when event_id is null then 'missing_event_id'
            when created_at is null then 'missing_created_at'
            when created_at > now() + interval '{{ var("future_tolerance_minutes") }} minutes'
                then 'future_created_at'
            when feature is null then 'missing_feature'
            when trigger_type is null then 'missing_trigger_type'
            when input_tokens is null then 'missing_input_tokens'
            when input_tokens < 0 then 'negative_input_tokens'
            when output_tokens is null then 'missing_output_tokens'
            when output_tokens < 0 then 'negative_output_tokens'
            when cached_input_tokens < 0 then 'negative_cached_input_tokens'
            when cache_write_tokens < 0 then 'negative_cache_write_tokens'
            when reasoning_tokens < 0 then 'negative_reasoning_tokens'
            when cost_usd is null and model is null then 'missing_cost_usd'
            when cost_usd is null then 'unpriced_model'
            when cost_usd < 0 then 'negative_cost_usd'
        end as reject_reason
    from costed
),

kept_before_window as (
    -- event_ids already kept from rows older than the window: any copy in the window is later
    {%- if cutoff is not none %}
        select distinct kept.event_id
        from {{ this }} as kept
        where
            kept.event_id in (
                select judged.event_id from judged
                where judged.reject_reason is null
            )
            and kept.created_at < {{ cutoff }}
            and kept.reject_reason is null
            and not kept.is_duplicate
    {%- else %}
        select cast(null as {{ type_text() }}) as event_id
        where false
    {%- endif %}
),

ranked as (
    select
        judged.*,
        -- nulls last spelt out: PostgreSQL's default for asc, Spark's is nulls first
        row_number() over (
            partition by judged.reject_reason is null, judged.event_id
            order by
                judged.created_at nulls last,
                judged.user_id nulls last,
                judged.session_id nulls last,
                judged.feature nulls last,
                judged.trigger_type nulls last,
                judged.model nulls last,
                judged.input_tokens nulls last,
                judged.output_tokens nulls last,
                judged.cost_usd nulls last,
                judged.user_agent nulls last
        ) as copy_number
    from judged
),

final as (
    select
        ranked.event_id,
        ranked.created_at,
        ranked.user_id,
        ranked.session_id,
        ranked.feature,
        ranked.trigger_type,
        ranked.model,
        ranked.input_tokens,
        ranked.output_tokens,
        ranked.cost_usd,
        ranked.user_agent,
        ranked.cached_input_tokens,
        ranked.cache_write_tokens,
        ranked.reasoning_tokens,
        ranked.provider,
        ranked.cost_source,
        ranked.load_hour,
        ranked.hour,
        ranked.day,
        ranked.reject_reason,
        (
            ranked.reject_reason is null
            and (ranked.copy_number > 1 or kept_before_window.event_id is not null)
        ) as is_duplicate
    from ranked
    left join kept_before_window
        on ranked.event_id = kept_before_window.event_id
)

select * from final
-- Stored in load_hour order: the models downstream and the next passes read recent hours by
-- index, and after a full build in dedup (id) order those rows would be spread over every page
-- (at 10M events each intermediate model then read the whole table on an incremental pass).
order by load_hour
