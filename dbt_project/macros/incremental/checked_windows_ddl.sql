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
    {{ return(adapter.dispatch('checked_windows_ddl', 'costwatch')()) }}
{%- endmacro %}

{#- Spark keeps no log (macros/engine/narrows_windows.sql). -#}
{% macro spark__checked_windows_ddl() -%}
{%- endmacro %}

{% macro default__checked_windows_ddl() -%}
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
