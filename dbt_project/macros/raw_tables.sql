{#- Where the source `shop` (schema raw) comes from. DuckDB: the ingestion writes raw.* into the warehouse file
    itself. Spark: the ingestion exports raw.* to Parquet folders under $CLV_SPARK_DIR/raw (ml/data/spark_engine.py)
    and this on-run-start hook declares them as external tables, re-declared each run so a re-export is read. -#}

{% macro clv_register_raw_tables() -%}
    {{ return(adapter.dispatch('clv_register_raw_tables', 'clv')()) }}
{%- endmacro %}

{% macro duckdb__clv_register_raw_tables() %}{% endmacro %}

{% macro spark__clv_register_raw_tables() -%}
    {%- if execute -%}
    {#- one statement per query: a Spark session runs a single statement at a time -#}
    {%- do run_query('create database if not exists raw') -%}
    {%- for table in ['orders', 'customers', 'events'] -%}
        {%- do run_query('drop table if exists raw.' ~ table) -%}
        {%- do run_query("create table raw." ~ table ~ " using parquet location '"
                         ~ env_var('CLV_SPARK_DIR') ~ "/raw/" ~ table ~ "'") -%}
    {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
