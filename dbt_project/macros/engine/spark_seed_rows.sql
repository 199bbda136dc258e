{#-
  Seeds on a local Spark session: Spark's CSV reader loads the file, then one INSERT casts each
  column to its seed type. dbt-spark's own way binds every value of the file into one INSERT
  of literals: the 9,824 price rows took ~40 s of every Spark build. Spark can read the file
  when it runs on this machine: the in-process session (profiles.yml's `host: NA`) or a server
  on localhost. Elsewhere (a remote Thrift server) the rows are inserted as dbt-spark 1.11.0's
  macro does (copied below: the adapter's own is not callable once overridden);
  dbt-databricks has its own.
-#}
{% macro spark__load_csv_rows(model, agate_table) %}
    {%- if target.host not in ('NA', 'localhost', '127.0.0.1') -%}
        {{ return(costwatch.spark_insert_csv_rows(model, agate_table)) }}
    {%- endif -%}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {%- set path = model['root_path'] ~ '/' ~ model['original_file_path'] -%}
    {%- set view = this.identifier ~ '__csv' -%}
    {%- call statement('_') -%}
        create or replace temporary view `{{ view }}`
        using csv
        options (path '{{ path }}', header 'true', multiLine 'true', escape '"')
    {%- endcall -%}
    {%- set sql -%}
        insert into {{ this.render() }}
        select
        {%- for col_name in agate_table.column_names %}
            {%- set type = column_override.get(col_name, adapter.convert_type(agate_table, loop.index0)) %}
            cast(`{{ col_name }}` as {{ type }}){{ ',' if not loop.last }}
        {%- endfor %}
        from `{{ view }}`
    {%- endset -%}
    {%- do adapter.add_query(sql, abridge_sql_log=True) -%}
    {{ return(sql) }}
{% endmacro %}

{% macro spark_insert_csv_rows(model, agate_table) %}
    {%- set batch_size = get_batch_size() -%}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {%- set statements = [] -%}
    {%- for chunk in agate_table.rows | batch(batch_size) -%}
        {%- set bindings = [] -%}
        {%- for row in chunk -%}
            {%- do bindings.extend(row) -%}
        {%- endfor -%}
        {%- set sql -%}
            insert into {{ this.render() }} values
            {% for row in chunk -%}
                ({%- for col_name in agate_table.column_names -%}
                    {%- set type = column_override.get(col_name, adapter.convert_type(agate_table, loop.index0)) -%}
                    cast({{ get_binding_char() }} as {{ type }})
                    {%- if not loop.last %},{% endif -%}
                {%- endfor -%})
                {%- if not loop.last %},{% endif %}
            {%- endfor %}
        {%- endset -%}
        {%- do adapter.add_query(sql, bindings=bindings, abridge_sql_log=True) -%}
        {%- if loop.index0 == 0 -%}
            {%- do statements.append(sql) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(statements[0]) }}
{% endmacro %}
