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
