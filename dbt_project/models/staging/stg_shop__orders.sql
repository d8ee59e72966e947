-- One row per order: the sum of its sale lines, placed when its earliest line was, with its refunds netted in.
-- `net_amount` and `is_cancelled` are the order's final state (every refund known). Point-in-time models never
-- read them: they net each refund of stg_shop__refunds from its own date, so a refund issued after a cutoff never
-- leaks into that cutoff.

{{ config(materialized=clv_read_back_materialization()) }}

with lines as (

    select * from {{ ref('stg_shop__order_lines') }}

),

sales as (

    select
        order_id,
        any_value(customer_id) as customer_id,  -- one per order id: ingestion quarantines conflicts
        min(line_ts) as order_ts,
        sum(amount) as gross_amount,
        sum(quantity) as quantity,
        {{ clv_arg_min('category', 'line_ts') }} as category,
        count(*) as n_lines
    from lines
    where not is_refund
    group by 1

),

refunds as (

    select
        order_id,
        sum(refund_amount) as refunded_amount,
        coalesce(sum(refund_amount) filter (where refund_kind = 'cancelled'), 0) as cancelled_amount,
        min(refund_date) as first_refund_date
    from {{ ref('stg_shop__refunds') }}
    where is_linked
    group by 1

),

netted as (

    select
        sales.order_id,
        sales.customer_id,
        sales.order_ts,
        cast(sales.order_ts as date) as order_date,
        sales.gross_amount,
        coalesce(refunds.refunded_amount, 0) as returned_amount,
        {{ clv_net_value('sales.gross_amount', 'refunds.refunded_amount') }} as net_amount,
        coalesce(refunds.refunded_amount, 0) > 0 as is_returned,
        -- cancelled in full: no order at all, once the cancellation is dated (features check that date)
        {{ clv_cancelled_in_full('sales.gross_amount', 'refunds.cancelled_amount') }} as is_cancelled,
        refunds.first_refund_date as returned_date,
        cast(sales.quantity as integer) as quantity,
        sales.category,
        sales.n_lines
    from sales
    left join refunds on sales.order_id = refunds.order_id

),

amount_stats as (

    -- over all orders: these are data-quality flags, never model features
    select
        {{ clv_quantile_cont('ln(1 + net_amount)', 0.25) }} as log_q1,
        {{ clv_quantile_cont('ln(1 + net_amount)', 0.75) }} as log_q3,
        avg(net_amount) as mean_amount,
        stddev_samp(net_amount) as std_amount
    from netted

)

select
    netted.*,
    coalesce(
        ln(1 + netted.net_amount) < amount_stats.log_q1 - 1.5 * (amount_stats.log_q3 - amount_stats.log_q1)
        or ln(1 + netted.net_amount) > amount_stats.log_q3 + 1.5 * (amount_stats.log_q3 - amount_stats.log_q1),
        false
    ) as is_outlier_iqr,
    coalesce(
        abs(netted.net_amount - amount_stats.mean_amount) > 3 * nullif(amount_stats.std_amount, 0),
        false
    ) as is_outlier_z
from netted
cross join amount_stats
