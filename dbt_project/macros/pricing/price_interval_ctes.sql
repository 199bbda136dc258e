{#- The CTEs of the price in effect per model name and provider, ending in `price_intervals`
    (see models/staging/stg_model_prices.sql). A macro, so that staging prices events from the
    seeds directly (they exist from `db init` on) and stg_model_prices shows the same table. -#}
{% macro price_interval_ctes() -%}
price_custom as (
    select
        lower(trim(model)) as model,
        lower(trim(provider)) as provider,
        lower(trim(usage_type)) as usage_type,
        usd_per_token,
        effective_from,
        coalesce(is_default, false) as is_default,
        1 as priority
    from {{ ref('model_prices_custom') }}
    where model is not null and usd_per_token is not null
),

price_shipped as (
    select
        lower(trim(model)) as model,
        lower(trim(provider)) as provider,
        lower(trim(usage_type)) as usage_type,
        usd_per_token,
        effective_from,
        coalesce(is_default, false) as is_default,
        2 as priority
    from {{ ref('model_prices') }}
),

price_rows as (
    select * from price_custom
    union all
    select price_shipped.* from price_shipped
    where not exists (
        select 1 from price_custom
        where
            price_custom.model = price_shipped.model
            and price_custom.provider is not distinct from price_shipped.provider
            and price_custom.usage_type = price_shipped.usage_type
    )
),

price_usage_intervals as (
    select
        model,
        provider,
        usage_type,
        usd_per_token,
        effective_from,
        coalesce(
            lead(effective_from) over (
                partition by model, provider, usage_type order by effective_from
            ),
            {{ date_infinity() }}
        ) as effective_to
    from price_rows
),

price_change_points as (
    select distinct model, provider, effective_from from price_rows
),

price_defaults as (
    {{ price_defaults_select() }}
),

price_points as (
    select
        model,
        provider,
        effective_from,
        coalesce(
            lead(effective_from) over (partition by model, provider order by effective_from),
            {{ date_infinity() }}
        ) as effective_to
    from price_change_points
),

price_intervals as (
    select
        price_points.model,
        price_points.provider,
        {{ day_start('price_points.effective_from') }} as effective_from,
        {{ day_start('price_points.effective_to') }} as effective_to,
        input_price.usd_per_token as input_usd_per_token,
        output_price.usd_per_token as output_usd_per_token,
        cached_price.usd_per_token as cached_input_usd_per_token,
        write_price.usd_per_token as cache_write_usd_per_token,
        (price_defaults.provider is not distinct from price_points.provider) as is_default
    from price_points
    inner join price_defaults
        on price_points.model = price_defaults.model
    {%- for alias, usage_type in [
        ('input_price', 'input'),
        ('output_price', 'output'),
        ('cached_price', 'cached_input'),
        ('write_price', 'cache_write'),
    ] %}
    left join price_usage_intervals as {{ alias }}
        on
            price_points.model = {{ alias }}.model
            and price_points.provider is not distinct from {{ alias }}.provider
            and {{ alias }}.usage_type = '{{ usage_type }}'
            and price_points.effective_from >= {{ alias }}.effective_from
            and price_points.effective_from < {{ alias }}.effective_to
    {%- endfor %}
)
{%- endmacro %}
