-- One row per cutoff: a fingerprint of everything its features and sequences are computed from, so that the
-- incremental models rebuild a cutoff exactly when one of these changed and keep it otherwise:
--   the raw rows dated <= cutoff (orders and refunds, events, profiles; undated rows count for every cutoff),
--   the vars that change the values (has_events, has_customers, sequence_weeks, max_events), the SQL of every
--   model and every macro (macros/) of this project and DuckDB's version. A row dated after the cutoff cannot
--   change it (the leakage rule).

{%- set models = graph.nodes.values() | selectattr('resource_type', 'equalto', 'model')
                 | selectattr('package_name', 'equalto', project_name) | sort(attribute='unique_id') | list
                 if execute else [] %}
{#- `clv` is this project's macro namespace (name -> macro); the models' values are partly written in its macros -#}
{%- set macros = [] %}
{%- for macro in (clv.values() | map(attribute='macro') | sort(attribute='unique_id') if execute else []) %}
    {%- if macro.original_file_path.startswith('macros/') %}{% do macros.append(macro.macro_sql) %}{% endif %}
{%- endfor %}
{%- set code_and_vars = local_md5((models | map(attribute='raw_code') | list + macros) | join('\n')) ~ '|'
    ~ clv_flag('has_events') ~ '|' ~ clv_flag('has_customers') ~ '|' ~ clv_int('sequence_weeks')
    ~ '|' ~ clv_int('max_events') %}

with raw_rows as (

    select cast(order_ts as date) as row_date,
           {{ clv_row_hash(['order_id', 'customer_id', 'order_ts', 'amount', 'quantity', 'unit_price', 'status',
                            'category']) }} as row_hash
    from {{ source('shop', 'orders') }}
    union all
    select cast(event_ts as date), {{ clv_row_hash(['customer_id', 'event_ts', 'event_type']) }}
    from {{ source('shop', 'events') }}
    union all
    select cast(signup_ts as date), {{ clv_row_hash(['customer_id', 'signup_ts', 'region', 'device', 'channel']) }}
    from {{ source('shop', 'customers') }}

),

days as (

    select coalesce(row_date, date '0001-01-01') as row_date, {{ clv_hash_sum('row_hash') }} as hash_sum,
        count(*) as n_rows
    from raw_rows
    group by 1

)

select
    cutoffs.cutoff_date,
    md5(concat_ws('|', '{{ code_and_vars }}', version(),
                  cast(coalesce(sum(days.hash_sum), 0) as {{ clv_string_type() }}),
                  cast(coalesce(sum(days.n_rows), 0) as {{ clv_string_type() }}))) as inputs_fingerprint
from (select distinct cutoff_date from {{ ref('cutoffs') }}) as cutoffs  -- a date can hold several roles
left join days on days.row_date <= cutoffs.cutoff_date
group by 1
