-- One row per refund or cancellation event: (order id, customer, day, kind), with the positive amount refunded.
-- `is_linked`: the refund's order id has sale lines here, so it nets that order; otherwise (a cancellation
-- invoice of its own, or a refund of an order older than the export) it nets the customer's value on its date.

{{ config(materialized=clv_read_back_materialization()) }}

with lines as (

    select * from {{ ref('stg_shop__order_lines') }}

),

sale_orders as (

    select distinct order_id from lines where not is_refund

)

select
    lines.order_id,
    lines.customer_id,
    lines.status as refund_kind,
    lines.line_date as refund_date,
    min(lines.line_ts) as refund_ts,
    -sum(lines.amount) as refund_amount,
    count(*) as n_lines,
    bool_or(sale_orders.order_id is not null) as is_linked
from lines
left join sale_orders on lines.order_id = sale_orders.order_id
where lines.is_refund
group by 1, 2, 3, 4
