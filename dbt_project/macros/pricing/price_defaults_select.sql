{#- Each model's default provider (price_interval_ctes): the first row by is_default, priority
    (custom first), then provider name. -#}
{% macro price_defaults_select() -%}
    {{ return(adapter.dispatch('price_defaults_select', 'costwatch')()) }}
{%- endmacro %}

{% macro default__price_defaults_select() -%}
    select distinct on (model)
        model,
        provider
    from price_rows
    order by model asc, is_default desc, priority asc, provider asc
{%- endmacro %}

{#- Spark has no `distinct on`. -#}
{% macro spark__price_defaults_select() -%}
    select
        model,
        provider
    from (
        select
            model,
            provider,
            row_number() over (
                partition by model order by is_default desc, priority asc, provider asc nulls last
            ) as rank_in_model
        from price_rows
    ) as ranked
    where rank_in_model = 1
{%- endmacro %}
