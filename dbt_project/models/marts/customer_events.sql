-- The recent event streams of the current cutoffs (see int_customer_events, which keeps them incrementally).

{{ config(materialized=clv_read_back_materialization()) }}

select {{ clv_star_except(ref('int_customer_events'), ['inputs_fingerprint', 'built_at']) }}
from {{ ref('int_customer_events') }}
