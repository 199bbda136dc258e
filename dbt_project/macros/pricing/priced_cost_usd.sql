{#- An event's cost at its prices (USD per token): uncached input, cached input and cache writes
    each at their own price (the input price when the model has none), output at the output
    price. input_tokens counts every input token, cached or not (OpenTelemetry GenAI and
    genai-prices both count them so). Null without an input or output price. -#}
{% macro priced_cost_usd() -%}
    (
        case
            when input_usd_per_token is not null and output_usd_per_token is not null
                then
                    greatest(
                        input_tokens
                        - coalesce(cached_input_tokens, 0)
                        - coalesce(cache_write_tokens, 0),
                        0
                    ) * input_usd_per_token
                    + coalesce(cached_input_tokens, 0)
                    * coalesce(cached_input_usd_per_token, input_usd_per_token)
                    + coalesce(cache_write_tokens, 0)
                    * coalesce(cache_write_usd_per_token, input_usd_per_token)
                    + output_tokens * output_usd_per_token
        end
    )
{%- endmacro %}
