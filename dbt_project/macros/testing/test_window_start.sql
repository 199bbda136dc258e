{#-
  Data tests over event-level tables check the newest `test_window_hours` of events, not all of
  history: an hourly pass rebuilds at most `late_event_lookback_hours` of them, so every hour is
  still checked by many passes in a row, and a pass stays as cheap at ten million events as at
  one million. `costwatch run --full-refresh` (dbt's --full-refresh) checks everything.
  Renders the start of the window as an SQL expression over `relation` (the start of an hour,
  so whole hours are compared), or none for everything.
-#}
{% macro test_window_start(relation, time_column) -%}
    {%- if flags.FULL_REFRESH -%}
        {{ return(none) }}
    {%- endif -%}
    {#- never shorter than what one pass may rebuild: the lookback and the new hour -#}
    {%- set hours = [var('test_window_hours') | int, (var('late_event_lookback_hours') | int) + 1]
        | max -%}
    {{ return(
        "(select " ~ hour_bucket("max(" ~ time_column ~ ")") ~ " - interval '" ~ hours
        ~ " hours' from " ~ relation ~ ")"
    ) }}
{%- endmacro %}
