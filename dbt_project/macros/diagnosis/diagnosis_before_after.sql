{#- A {"before": .., "after": ..} evidence object, numbers rounded to `digits` decimals. -#}
{% macro diagnosis_before_after(before, after, digits=4) -%}
    jsonb_build_object(
        'before', round(({{ before }})::numeric, {{ digits }}),
        'after', round(({{ after }})::numeric, {{ digits }})
    )
{%- endmacro %}
