{#-
  What staging checked again, passed downstream. Each build of a `_checked` staging model logs
  the start of the hours it re-checked (`changed_hours_cutoff`; '-infinity' on a first build or
  a full refresh, 'infinity' when nothing changed) in `staging.dbt_checked_windows`. An
  intermediate model rebuilds from the oldest start logged since it last consumed that log
  (`staging.dbt_consumed_windows`), never from before its own lookback cutoff: a new hour adds
  one hour of work, not the whole lookback. Both writes happen while the model compiles, inside
  its transaction: a model that fails consumes nothing, and the next pass rebuilds those hours.
-#}

{#- Run once per invocation (on-run-start in dbt_project.yml), before models run in parallel:
    two `create table if not exists` at once can collide on the catalog. -#}
{% macro checked_windows_ddl() -%}
    create schema if not exists staging;
    create table if not exists staging.dbt_checked_windows (
        id bigserial primary key,
        model text not null,
        since timestamptz not null
    );
    create table if not exists staging.dbt_consumed_windows (
        consumer text not null,
        model text not null,
        last_id bigint not null,
        primary key (consumer, model)
    )
{%- endmacro %}

{#- Only a run or a build writes the logs: `dbt compile`, `dbt show` and sqlfluff's dbt templater
    (`make lint`, which compiles every model) leave them alone, so compiling never changes what
    the next pass rebuilds. -#}
{% macro writes_checked_windows() -%}
    {{ return(execute and flags.WHICH in ('run', 'build')) }}
{%- endmacro %}

{#- Staging: log that `this` re-checked from `since` (a timestamptz literal). -#}
{% macro log_checked_window(since) -%}
    {%- if not writes_checked_windows() -%}{{ return('') }}{%- endif -%}
    {%- set statement -%}
        insert into staging.dbt_checked_windows (model, since) values ('{{ this.name }}', {{ since }});
        delete from staging.dbt_checked_windows
        where model = '{{ this.name }}' and id < (
            select max(id) - 200 from staging.dbt_checked_windows where model = '{{ this.name }}'
        );
        select 1
    {%- endset -%}
    {%- do run_query(statement) -%}
{%- endmacro %}

{#- Intermediate: `cutoff` (this model's own, from incremental_cutoff) narrowed to what
    `staging_model` re-checked since this model last looked; `grain` 'day' widens the start to
    its UTC day. None (a full build) stays none, and records the log as consumed. -#}
{% macro checked_window_cutoff(cutoff, staging_model, grain='hour') -%}
    {%- if not writes_checked_windows() -%}{{ return(cutoff) }}{%- endif -%}
    {%- set since = "min(since)" if grain == 'hour' else day_start(day_bucket("min(since)")) -%}
    {%- set query -%}
        with

        consumed as (
            select coalesce(max(last_id), 0) as last_id
            from staging.dbt_consumed_windows
            where consumer = '{{ this.name }}' and model = '{{ staging_model }}'
        ),

        unconsumed as (
            select
                coalesce({{ since }}, 'infinity'::timestamptz) as since,
                max(id) as newest_id
            from staging.dbt_checked_windows
            where model = '{{ staging_model }}' and id > (select consumed.last_id from consumed)
        ),

        recorded as (
            insert into staging.dbt_consumed_windows (consumer, model, last_id)
            select '{{ this.name }}', '{{ staging_model }}', unconsumed.newest_id
            from unconsumed
            where unconsumed.newest_id is not null
            on conflict (consumer, model) do update
                set last_id = greatest(excluded.last_id, staging.dbt_consumed_windows.last_id)
        )

        select
            {%- if cutoff is none %}
            null::text
            {%- else %}
            greatest({{ cutoff }}, unconsumed.since)::text
            {%- endif %}
        from unconsumed
    {%- endset -%}
    {%- set value = run_query(query).columns[0].values()[0] -%}
    {%- if cutoff is none or value is none -%}{{ return(cutoff) }}{%- endif -%}
    {{ return("'" ~ value ~ "'::timestamptz") }}
{%- endmacro %}
