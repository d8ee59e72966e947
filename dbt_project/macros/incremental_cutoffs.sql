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
