{#-
  A cause catalogue text (`action` or `fix` of seeds/cause_catalogue.csv) with `{detail}` filled
  in: the trigger type, tool, feature or model the cause was pinned on (else the catalogue's
  default), on one line, without backticks (it sits in a code span or block), at most 200
  characters. `template`, `detail` and `default` are SQL expressions.
-#}
{% macro cause_text(template, detail, default) -%}
    replace(
        {{ template }},
        '{detail}',
        coalesce(
            left(replace(regexp_replace({{ detail }}, '[[:cntrl:]]', ' ', 'g'), '`', ''''), 200),
            {{ default }},
            ''
        )
    )
{%- endmacro %}
