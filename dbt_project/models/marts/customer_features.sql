-- The features of the current cutoffs (see int_customer_features, which keeps them incrementally).

{{ config(materialized='view') }}

select * exclude (inputs_fingerprint, built_at)
from {{ ref('int_customer_features') }}
