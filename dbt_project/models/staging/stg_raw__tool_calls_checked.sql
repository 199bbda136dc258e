{#-
  Every raw tool call of the incremental window, typed and trimmed, with its verdict:
  `reject_reason` (null when valid) and `is_duplicate`. Same rules and order as
  stg_raw__inference_events_checked: validity first, then deduplication of call_id among valid
  rows (earliest created_at, then the smallest row, is kept). Replaced per `load_hour`.
-#}
{{
    config(
        materialized='incremental',
        unique_key='load_hour',
        indexes=[
            {'columns': ['load_hour']},
            {'columns': ['created_at']},
            {'columns': ['call_id']},
        ],
    )
}}

{%- set cutoff = changed_hours_cutoff(
    source('raw', 'tool_calls'), where='reject_reason is null and not is_duplicate'
) %}

with

source as (
    select * from {{ source('raw', 'tool_calls') }}
    where {{ since_cutoff('created_at', cutoff, or_null=true) }}
),

typed as (
    select
        nullif(trim(call_id), '') as call_id,
        created_at,
        trim(event_id) as event_id,
        trim(feature) as feature,
        trim(tool_name) as tool_name,
        success,
        retries,
        latency_ms,
        coalesce({{ hour_bucket('created_at') }}, {{ minus_infinity() }}) as load_hour,
        {{ hour_bucket('created_at') }} as hour,
        {{ day_bucket('created_at') }} as day
    from source
),

judged as (
    select
        *,
        case
            when call_id is null then 'missing_call_id'
            when created_at is null then 'missing_created_at'
            when created_at > now() + interval '{{ var("future_tolerance_minutes") }} minutes'
                then 'future_created_at'
            when tool_name is null then 'missing_tool_name'
            when success is null then 'missing_success'
            when retries is null then 'missing_retries'
            when retries < 0 then 'negative_retries'
        end as reject_reason
    from typed
),

kept_before_window as (
    -- call_ids already kept from rows older than the window: any copy in the window is later
    {%- if cutoff is not none %}
        select distinct kept.call_id
        from {{ this }} as kept
        where
            kept.call_id in (
                select judged.call_id from judged
                where judged.reject_reason is null
            )
            and kept.created_at < {{ cutoff }}
            and kept.reject_reason is null
            and not kept.is_duplicate
    {%- else %}
        select cast(null as {{ type_text() }}) as call_id
        where false
    {%- endif %}
),

ranked as (
    select
        judged.*,
        -- nulls last spelt out: PostgreSQL's default for asc, Spark's is nulls first
        row_number() over (
            partition by judged.reject_reason is null, judged.call_id
            order by
                judged.created_at nulls last,
                judged.event_id nulls last,
                judged.feature nulls last,
                judged.tool_name nulls last,
                judged.success nulls last,
                judged.retries nulls last,
                judged.latency_ms nulls last
        ) as copy_number
    from judged
),

final as (
    select
        ranked.call_id,
        ranked.created_at,
        ranked.event_id,
        ranked.feature,
        ranked.tool_name,
        ranked.success,
        ranked.retries,
        ranked.latency_ms,
        ranked.load_hour,
        ranked.hour,
        ranked.day,
        ranked.reject_reason,
        (
            ranked.reject_reason is null
            and (ranked.copy_number > 1 or kept_before_window.call_id is not null)
        ) as is_duplicate
    from ranked
    left join kept_before_window
        on ranked.call_id = kept_before_window.call_id
)

select * from final
-- Stored in load_hour order: the models downstream and the next passes read recent hours by
-- index, and after a full build in dedup (id) order those rows would be spread over every page
-- (at 10M events each intermediate model then read the whole table on an incremental pass).
order by load_hour
