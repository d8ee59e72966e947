{#- The SQL that DuckDB and Spark spell differently, one small dispatched macro each (adapter.dispatch: duckdb__ /
    spark__). Each duckdb__ version renders what the models wrote before these macros existed, so DuckDB's results
    are unchanged; the spark__ one computes the same value with Spark SQL (non-ANSI mode, as dbt-spark runs it). -#}

{% macro clv_string_type() -%}
    {#- Spark has no bare `varchar` (it wants a length); its unbounded text type is `string`. -#}
    {{ return(adapter.dispatch('clv_string_type', 'clv')()) }}
{%- endmacro %}
{% macro duckdb__clv_string_type() %}varchar{% endmacro %}
{% macro spark__clv_string_type() %}string{% endmacro %}

{% macro clv_days_between(start_date, end_date) -%}
    {#- Whole days from start_date to end_date (an integer). Spark's `date - date` is an interval, not a number. -#}
    {{ return(adapter.dispatch('clv_days_between', 'clv')(start_date, end_date)) }}
{%- endmacro %}
{% macro duckdb__clv_days_between(start_date, end_date) %}({{ end_date }} - {{ start_date }}){% endmacro %}
{% macro spark__clv_days_between(start_date, end_date) %}datediff({{ end_date }}, {{ start_date }}){% endmacro %}

{% macro clv_days_before(date_expression, days) -%}
    {#- The date `days` days before (a DATE, not DuckDB's dbt.dateadd timestamp). -#}
    {{ return(adapter.dispatch('clv_days_before', 'clv')(date_expression, days)) }}
{%- endmacro %}
{% macro duckdb__clv_days_before(date_expression, days) %}{{ date_expression }} - {{ days }}{% endmacro %}
{% macro spark__clv_days_before(date_expression, days) %}date_sub({{ date_expression }}, {{ days }}){% endmacro %}

{% macro clv_days_after(date_expression, days) -%}
    {{ return(adapter.dispatch('clv_days_after', 'clv')(date_expression, days)) }}
{%- endmacro %}
{% macro duckdb__clv_days_after(date_expression, days) %}{{ date_expression }} + {{ days }}{% endmacro %}
{% macro spark__clv_days_after(date_expression, days) %}date_add({{ date_expression }}, {{ days }}){% endmacro %}

{% macro clv_int_div(numerator, denominator) -%}
    {#- Integer division (operands >= 0 here, so truncation and floor agree). -#}
    {{ return(adapter.dispatch('clv_int_div', 'clv')(numerator, denominator)) }}
{%- endmacro %}
{% macro duckdb__clv_int_div(numerator, denominator) %}{{ numerator }} // {{ denominator }}{% endmacro %}
{% macro spark__clv_int_div(numerator, denominator) %}{{ numerator }} div {{ denominator }}{% endmacro %}

{% macro clv_isodow(date_expression) -%}
    {#- ISO day of week: Monday 1 .. Sunday 7 (Spark's weekday() is Monday 0 .. Sunday 6). -#}
    {{ return(adapter.dispatch('clv_isodow', 'clv')(date_expression)) }}
{%- endmacro %}
{% macro duckdb__clv_isodow(date_expression) %}isodow({{ date_expression }}){% endmacro %}
{% macro spark__clv_isodow(date_expression) %}(weekday({{ date_expression }}) + 1){% endmacro %}

{% macro clv_quantile_cont(expression, fraction) -%}
    {#- The interpolated quantile (Spark's exact `percentile` interpolates linearly, like quantile_cont). -#}
    {{ return(adapter.dispatch('clv_quantile_cont', 'clv')(expression, fraction)) }}
{%- endmacro %}
{% macro duckdb__clv_quantile_cont(expression, fraction) %}quantile_cont({{ expression }}, {{ fraction }}){% endmacro %}
{% macro spark__clv_quantile_cont(expression, fraction) %}percentile({{ expression }}, {{ fraction }}){% endmacro %}

{% macro clv_arg_min(value, ordering) -%}
    {{ return(adapter.dispatch('clv_arg_min', 'clv')(value, ordering)) }}
{%- endmacro %}
{% macro duckdb__clv_arg_min(value, ordering) %}arg_min({{ value }}, {{ ordering }}){% endmacro %}
{% macro spark__clv_arg_min(value, ordering) %}min_by({{ value }}, {{ ordering }}){% endmacro %}

{% macro clv_row_hash(columns) -%}
    {#- A 64-bit hash of a row's columns, for int_cutoff_inputs' fingerprints (engine-specific values, compared only
        with fingerprints computed by the same engine). -#}
    {{ return(adapter.dispatch('clv_row_hash', 'clv')(columns)) }}
{%- endmacro %}
{% macro duckdb__clv_row_hash(columns) %}hash({{ columns | join(', ') }}){% endmacro %}
{% macro spark__clv_row_hash(columns) %}xxhash64({{ columns | join(', ') }}){% endmacro %}

{% macro clv_hash_sum(expression) -%}
    {#- A sum of 64-bit hashes that cannot overflow (DuckDB: 128-bit integers; Spark: decimal(38, 0)). -#}
    {{ return(adapter.dispatch('clv_hash_sum', 'clv')(expression)) }}
{%- endmacro %}
{% macro duckdb__clv_hash_sum(expression) %}sum({{ expression }}::hugeint){% endmacro %}
{% macro spark__clv_hash_sum(expression) %}sum(cast({{ expression }} as decimal(38, 0))){% endmacro %}

{% macro clv_star_except(relation, excluded) -%}
    {#- Every column of `relation` but `excluded`. Spark has no `* exclude`: the columns are listed from the
        relation once it exists (at parse time, when it may not, `*` stands in). -#}
    {{ return(adapter.dispatch('clv_star_except', 'clv')(relation, excluded)) }}
{%- endmacro %}
{% macro duckdb__clv_star_except(relation, excluded) %}* exclude ({{ excluded | join(', ') }}){% endmacro %}
{% macro spark__clv_star_except(relation, excluded) -%}
    {%- if not execute -%}*{%- else -%}
    {%- set kept = [] -%}
    {%- for column in adapter.get_columns_in_relation(relation) -%}
        {%- if column.name | lower not in excluded | map('lower') | list %}{% do kept.append(column.name) %}{% endif -%}
    {%- endfor -%}
    {{ kept | join(', ') }}
    {%- endif -%}
{%- endmacro %}

{% macro clv_share_of(condition) -%}
    {#- The share of rows where `condition` holds, as a double. Spark reads `1.0` as a decimal and averages it into
        a decimal of 5 places (0.66667), so its version averages double literals. -#}
    {{ return(adapter.dispatch('clv_share_of', 'clv')(condition)) }}
{%- endmacro %}
{% macro duckdb__clv_share_of(condition) %}avg(case when {{ condition }} then 1.0 else 0.0 end){% endmacro %}
{% macro spark__clv_share_of(condition) %}avg(case when {{ condition }} then 1.0D else 0.0D end){% endmacro %}

{% macro clv_read_back_materialization() -%}
    {#- A model the Python side reads (the marts' views over the incremental models, the staged money): a view on
        DuckDB; a table on Spark, whose tables are Parquet folders read without a Spark session. -#}
    {{ return(adapter.dispatch('clv_read_back_materialization', 'clv')()) }}
{%- endmacro %}
{% macro duckdb__clv_read_back_materialization() %}{{ return('view') }}{% endmacro %}
{% macro spark__clv_read_back_materialization() %}{{ return('table') }}{% endmacro %}
