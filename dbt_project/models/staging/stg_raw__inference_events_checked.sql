{#-
  Every raw inference event of the incremental window, typed and trimmed, with its verdict:
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
        incremental_strategy='delete+insert',
        unique_key='load_hour',
        on_schema_change='append_new_columns',
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
        cost_usd,
        user_agent,
        coalesce({{ hour_bucket('created_at') }}, '-infinity'::timestamptz) as load_hour,
        {{ hour_bucket('created_at') }} as hour,
        {{ day_bucket('created_at') }} as day
    from source
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
            when cost_usd is null then 'missing_cost_usd'
            when cost_usd < 0 then 'negative_cost_usd'
        end as reject_reason
    from typed
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
        select null::text as event_id
        where false
    {%- endif %}
),

ranked as (
    select
        judged.*,
        row_number() over (
            partition by judged.reject_reason is null, judged.event_id
            order by
                judged.created_at,
                judged.user_id,
                judged.session_id,
                judged.feature,
                judged.trigger_type,
                judged.model,
                judged.input_tokens,
                judged.output_tokens,
                judged.cost_usd,
                judged.user_agent
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
