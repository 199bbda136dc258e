{#-
  The price in effect for each model name and provider, as intervals [effective_from,
  effective_to) with one column per usage type (USD per token). Built from the shipped seed
  (genai-prices) and the user's `model_prices_custom`, which replaces the shipped rows of the same
  model, provider and usage type. `is_default` marks the provider priced when an event names none,
  or one without a price for its model (genai-prices' own choice; else the user's; else the first
  by name). Provider names of the OpenTelemetry GenAI conventions are mapped to genai-prices' ids
  in `provider_key` (macros/pricing/provider_key.sql).
-#}
{{
    config(
        materialized='table',
        indexes=[{'columns': ['model']}],
    )
}}

with

{{ price_interval_ctes() }},

final as (
    select * from price_intervals
)

select * from final
