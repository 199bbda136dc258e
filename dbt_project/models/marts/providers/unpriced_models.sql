-- Models whose events carried no cost and have no price in effect (reject_reason
-- unpriced_model): what to add to the model_prices_custom seed. A view on the staging verdicts.
{{ config(materialized='view') }}

with

rejected as (
    select * from {{ ref('stg_raw__inference_events_checked') }}
    where reject_reason = 'unpriced_model'
),

final as (
    select
        model,
        provider,
        count(*) as events,
        min(created_at) as first_seen_at,
        max(created_at) as last_seen_at,
        sum(input_tokens)::bigint as sum_input_tokens,
        sum(output_tokens)::bigint as sum_output_tokens
    from rejected
    group by model, provider
)

select * from final
