{#- Incremental models keyed by cutoff: build a cutoff only when it is new or its inputs changed. -#}

{% macro clv_cutoffs_to_build() -%}
    {#- The current cutoffs (with their inputs fingerprint) that this model has not built from the same inputs. -#}
    select inputs.cutoff_date, inputs.inputs_fingerprint
    from {{ ref('int_cutoff_inputs') }} as inputs
    {%- if is_incremental() %}
    where not exists (
        select 1 from {{ this }} as built
        where built.cutoff_date = inputs.cutoff_date and built.inputs_fingerprint = inputs.inputs_fingerprint
    )
    {%- endif %}
{%- endmacro %}

{% macro clv_keep_current_cutoffs() -%}
    {#- Post-hook: drop the rows of cutoffs no longer current or built from other inputs, so the table holds exactly
        the current cutoffs (a rebuilt cutoff with no rows at all must not leave its old rows behind). -#}
    delete from {{ this }} as built
    where not exists (
        select 1 from {{ ref('int_cutoff_inputs') }} as inputs
        where inputs.cutoff_date = built.cutoff_date and inputs.inputs_fingerprint = built.inputs_fingerprint
    )
{%- endmacro %}

{% macro clv_incremental_by_cutoff() -%}
    {#- The config of a model kept incrementally by cutoff (int_customer_features, int_customer_sequences), written
        once so the two cannot drift apart. -#}
    {{ return(adapter.dispatch('clv_incremental_by_cutoff', 'clv')()) }}
{%- endmacro %}

{% macro duckdb__clv_incremental_by_cutoff() -%}
    {#- delete+insert on cutoff_date of the cutoffs from clv_cutoffs_to_build, then the post-hook above. -#}
    {{ config(
        materialized='incremental',
        unique_key='cutoff_date',
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        post_hook="{{ clv_keep_current_cutoffs() }}"
    ) }}
{%- endmacro %}

{% macro spark__clv_incremental_by_cutoff() -%}
    {#- Spark (session, Parquet tables) can neither delete rows nor merge (both need Delta or Iceberg, which are not
        installed offline), and insert_overwrite by partition cannot drop a stale cutoff: a full table every run.
        is_incremental() is then false, so clv_cutoffs_to_build yields every current cutoff. -#}
    {{ config(materialized='table') }}
{%- endmacro %}

{% macro clv_build_columns(relation=none) -%}
    {#- The bookkeeping columns every incremental-by-cutoff model ends with (the marts' views exclude them): the
        fingerprint the cutoff was built from (carried from clv_cutoffs_to_build, through `relation`) and when. -#}
    {{ relation ~ '.' if relation }}inputs_fingerprint,
    current_timestamp as built_at
{%- endmacro %}
