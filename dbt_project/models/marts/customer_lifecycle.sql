-- Lifecycle stage per (customer_id, cutoff_date); the first matching rule wins (see customer_lifecycle.yml).

select
    customer_id,
    cutoff_date,
    case
        when n_orders = 0 then 'potential'
        when recency_days > {{ clv_int('churn_after_days') }} then 'churned'
        when recency_days > {{ clv_int('at_risk_after_days') }}
            or (n_orders >= 2 and recency_days > 2 * mean_interpurchase_days) then 'at_risk'
        when days_since_first_order <= {{ clv_int('new_within_days') }} then 'new'
        when n_orders >= {{ clv_int('loyal_min_orders') }} then 'loyal'
        else 'active'
    end as lifecycle_stage
from {{ ref('customer_features') }}
