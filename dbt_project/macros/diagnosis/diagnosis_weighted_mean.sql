{#- The weighted mean of an hourly measure over the baseline rows of int_diagnosis_windows
    (`windows`): exact numeric sums, so the result does not depend on the rows' order. -#}
{% macro diagnosis_weighted_mean(expression) -%}
    {{ as_double(
        "(sum(" ~ as_numeric("(windows.weight * " ~ expression ~ ")") ~ ")"
        ~ " filter (where windows.period = 'baseline')"
        ~ " / sum(" ~ as_numeric("windows.weight") ~ ") filter (where windows.period = 'baseline'))"
    ) }}
{%- endmacro %}
