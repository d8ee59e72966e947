-- One row per completed order, with its return and outlier flags on the net amount.
-- `net_amount` is the order's final value (every refund known); point-in-time models (features, daily activity)
-- count a refund only from its own date `returned_date`, so a refund issued after a cutoff never leaks into it.

with source as (

    select * from {{ source('shop', 'orders') }}

),

typed as (

    select
        cast(order_id as varchar) as order_id,
        cast(customer_id as varchar) as customer_id,
        cast(order_ts as timestamp) as order_ts,
        cast(amount as double) as amount,
        cast(quantity as integer) as quantity,
        lower(trim(cast(status as varchar))) as status,
        cast(category as varchar) as category
    from source
    where order_id is not null

),

deduplicated as (

    -- exact duplicates share (order_id, status): keep one, deterministically
    select *
    from typed
    qualify row_number() over (
        partition by order_id, status
        order by order_ts, amount desc, customer_id, quantity, category
    ) = 1

),

completed as (

    select * from deduplicated
    where status = 'completed' and customer_id is not null and order_ts is not null

),

returns as (

    select
        order_id,
        amount as returned_amount,
        order_ts as returned_ts
    from deduplicated
    where status = 'returned'

),

netted as (

    select
        completed.order_id,
        completed.customer_id,
        completed.order_ts,
        cast(completed.order_ts as date) as order_date,
        completed.amount as gross_amount,
        coalesce(returns.returned_amount, 0) as returned_amount,
        greatest(coalesce(completed.amount, 0) - coalesce(returns.returned_amount, 0), 0) as net_amount,
        returns.order_id is not null as is_returned,
        returns.returned_ts,
        cast(returns.returned_ts as date) as returned_date,
        completed.quantity,
        completed.category
    from completed
    left join returns on completed.order_id = returns.order_id

),

amount_stats as (

    -- over all orders: these are data-quality flags, never model features
    select
        quantile_cont(ln(1 + net_amount), 0.25) as log_q1,
        quantile_cont(ln(1 + net_amount), 0.75) as log_q3,
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
