{#- Typed access to the project vars (Dagster passes them with `--vars`, as YAML/JSON values or strings). -#}

{% macro clv_flag(name) -%}
    {#- A boolean var: true/false, 1/0, "yes"/"no"... -> python bool. -#}
    {%- set value = var(name) | string | lower | trim -%}
    {%- if value in ['true', '1', 'yes', 'y', 'on'] -%}
        {{ return(true) }}
    {%- elif value in ['false', '0', 'no', 'n', 'off', 'none', ''] -%}
        {{ return(false) }}
    {%- endif -%}
    {{ exceptions.raise_compiler_error("var '" ~ name ~ "' must be a boolean, got '" ~ var(name) ~ "'") }}
{%- endmacro %}

{% macro clv_int(name) -%}
    {#- A non-negative integer var, rendered as a SQL literal. -#}
    {%- set raw = var(name) | string | trim -%}
    {%- if not raw.isdigit() -%}
        {{ exceptions.raise_compiler_error("var '" ~ name ~ "' must be a non-negative integer, got '" ~ raw ~ "'") }}
    {%- endif -%}
    {{ return(raw | int) }}
{%- endmacro %}

{% macro clv_as_of() -%}
    {#- The scoring cutoff t as a DuckDB DATE literal. -#}
    {%- set raw = var('as_of') | string | trim -%}
    {%- if modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', raw[:10]) is none -%}
        {{ exceptions.raise_compiler_error("var 'as_of' must be an ISO date (YYYY-MM-DD), got '" ~ raw ~ "'") }}
    {%- endif -%}
    date '{{ raw[:10] }}'
{%- endmacro %}
