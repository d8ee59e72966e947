-- One row per order line as ingested: sale lines (amount >= 0, status 'completed') and refund lines (amount < 0,
-- status 'returned' or 'cancelled'), each dated when it happened. Ingestion has already set aside exact duplicates
-- and order ids that name two customers, so every line here counts: sum(amount) is the shop's net money.

select
    cast(order_id as {{ clv_string_type() }}) as order_id,
    cast(customer_id as {{ clv_string_type() }}) as customer_id,
    cast(order_ts as timestamp) as line_ts,
    cast(order_ts as date) as line_date,
    cast(amount as double) as amount,
    cast(quantity as integer) as quantity,
    lower(trim(cast(status as {{ clv_string_type() }}))) as status,
    cast(category as {{ clv_string_type() }}) as category,
    coalesce(cast(amount as double) < 0
             or lower(trim(cast(status as {{ clv_string_type() }}))) in ('returned', 'cancelled'), false)
        as is_refund
from {{ source('shop', 'orders') }}  -- no filter: ingestion guarantees ids, dates and amounts (tested below)
