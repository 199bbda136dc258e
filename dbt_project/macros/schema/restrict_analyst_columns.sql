{#-
  Post-hook of every mart: analysts (the roles `costwatch db grant-analyst` recorded in
  ops.analyst_roles) read a mart's columns except user and session ids. dbt recreates a mart
  on a full build, and the schema's default privileges give analysts the whole new relation;
  this runs in the same transaction, before it is visible.
-#}
{% macro restrict_analyst_columns() -%}
    {{ return(adapter.dispatch('restrict_analyst_columns', 'costwatch')()) }}
{%- endmacro %}

{#- Spark: privileges are the catalog's (Unity Catalog column masks on Databricks). -#}
{% macro spark__restrict_analyst_columns() -%}
{%- endmacro %}

{% macro default__restrict_analyst_columns() -%}
do $restrict$
declare
    analyst text;
    allowed text;
begin
    if to_regclass('ops.analyst_roles') is null then
        return;
    end if;
    if not exists (
        select 1 from information_schema.columns
        where table_schema = '{{ this.schema }}' and table_name = '{{ this.identifier }}'
          and column_name in ('user_id', 'session_id')
    ) then
        return;
    end if;
    select string_agg(quote_ident(column_name), ', ' order by ordinal_position) into allowed
    from information_schema.columns
    where table_schema = '{{ this.schema }}' and table_name = '{{ this.identifier }}'
      and column_name not in ('user_id', 'session_id');
    for analyst in select role_name from ops.analyst_roles loop
        if exists (select 1 from pg_roles where rolname = analyst) then
            execute format('revoke select on %s from %I', '{{ this }}', analyst);
            execute format('grant select (%s) on %s to %I', allowed, '{{ this }}', analyst);
        end if;
    end loop;
end
$restrict$
{%- endmacro %}
