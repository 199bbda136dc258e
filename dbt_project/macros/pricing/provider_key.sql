{#- A provider name as the price table knows it: lower-cased, and the OpenTelemetry GenAI
    conventions' names (gen_ai.provider.name) mapped to genai-prices' provider ids. -#}
{% macro provider_key(column) -%}
    case lower(trim({{ column }}))
        when 'aws.bedrock' then 'aws'
        when 'azure.ai.openai' then 'azure'
        when 'azure.ai.inference' then 'azure'
        when 'az.ai.openai' then 'azure'
        when 'az.ai.inference' then 'azure'
        when 'vertex_ai' then 'google'
        when 'gemini' then 'google'
        when 'xai' then 'x-ai'
        when 'mistralai' then 'mistral'
        when 'gcp.vertex_ai' then 'google'
        when 'gcp.gemini' then 'google'
        when 'gcp.gen_ai' then 'google'
        when 'x_ai' then 'x-ai'
        when 'mistral_ai' then 'mistral'
        else lower(trim({{ column }}))
    end
{%- endmacro %}
