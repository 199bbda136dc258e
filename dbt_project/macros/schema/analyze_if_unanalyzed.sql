{#-
  Post-hook of every table model: ANALYZE the table when it has no statistics yet, that is when
  it was just (re)built: a first build, a full refresh, or a `table` model (rebuilt every pass).
  Without it the next model's plan is made blind (PostgreSQL guesses row counts for a table
  autovacuum has not reached), which at a million events turned a 2 s query into 18 s. An
  incremental model keeps its statistics between passes; autovacuum refreshes them as it grows.
-#}
{% macro analyze_if_unanalyzed() -%}
    {{ return(adapter.dispatch('analyze_if_unanalyzed', 'costwatch')()) }}
{%- endmacro %}

{#- Spark plans from the files it reads: nothing to do. -#}
{% macro spark__analyze_if_unanalyzed() -%}
{%- endmacro %}

{% macro default__analyze_if_unanalyzed() -%}
    {%- if model.config.materialized in ('table', 'incremental') -%}
        do $analyze$
        begin
            if not exists (
                select 1 from pg_catalog.pg_stats
                where schemaname = '{{ this.schema }}' and tablename = '{{ this.identifier }}'
            ) then
                execute 'analyze {{ this }}';
            end if;
        end
        $analyze$
    {%- endif -%}
{%- endmacro %}
