{#-
  The baseline walk's history after one more hour (cost_baseline_hourly): drop the oldest hour and
  append the new hour's `value`, or, when `null_count` (an SQL integer expression) is positive,
  null that many newest hours (the new one included): the hours of a run of spike hours once it
  is confirmed as a spike, or of a dip inside a spike that the spike resumed after, so that a
  spike never teaches the baseline. `value` is null for hours that are no observation (gaps).
-#}
{% macro detection_shift_history(history, value, null_count, span) -%}
    case
        when {{ null_count }} > 0
            then {{ history }}[2:{{ span }} - ({{ null_count }} - 1)]
            || array_fill(null::float8, array[{{ null_count }}])
        else {{ history }}[2:{{ span }}] || {{ value }}
    end
{%- endmacro %}
