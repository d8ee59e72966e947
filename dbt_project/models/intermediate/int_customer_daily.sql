-- One row per (customer_id, activity_date) with any order, refund or known event that day.

-- spend is a cash view: gross order value on the order day, minus refunds and cancellations on the day they were
-- issued (an order cancelled in full is no order, but its money still passes through here, netting to zero).

with order_days as (

    select
        customer_id,
        order_date as activity_date,
        count(*) filter (where not is_cancelled) as orders,
        sum(gross_amount) as spend,
        coalesce(sum(quantity) filter (where not is_cancelled), 0) as quantity
    from {{ ref('stg_shop__orders') }}
    group by 1, 2

),

refund_days as (

    select customer_id, refund_date as activity_date, 0 as orders, -sum(refund_amount) as spend, 0 as quantity
    from {{ ref('stg_shop__refunds') }}
    group by 1, 2

),

orders as (

    select customer_id, activity_date, sum(orders) as orders, sum(spend) as spend, sum(quantity) as quantity
    from (select * from order_days union all select * from refund_days)
    group by 1, 2
    having sum(orders) > 0 or sum(spend) <> 0  -- a day whose one order was cancelled that day holds nothing

),

events as (

    select
        customer_id,
        event_date as activity_date,
        count(*) as events,
        count(*) filter (where event_type = 'view') as views,
        count(*) filter (where event_type = 'search') as searches,
        count(*) filter (where event_type = 'add_to_cart') as carts,
        count(*) filter (where event_type = 'purchase') as purchase_events,
        count(*) filter (where event_type = 'review') as reviews,
        count(*) filter (where event_type = 'like') as likes,
        count(*) filter (where event_type = 'share') as shares
    from {{ ref('stg_shop__events') }}
    where {{ clv_flag('has_events') }}
      and event_type in ('view', 'search', 'add_to_cart', 'purchase', 'review', 'like', 'share')
    group by 1, 2

)

select
    coalesce(orders.customer_id, events.customer_id) as customer_id,
    coalesce(orders.activity_date, events.activity_date) as activity_date,
    cast(coalesce(orders.orders, 0) as integer) as orders,
    cast(coalesce(orders.spend, 0) as double) as spend,
    cast(coalesce(orders.quantity, 0) as integer) as quantity,
    cast(coalesce(events.events, 0) as integer) as events,
    cast(coalesce(events.views, 0) as integer) as views,
    cast(coalesce(events.searches, 0) as integer) as searches,
    cast(coalesce(events.carts, 0) as integer) as carts,
    cast(coalesce(events.purchase_events, 0) as integer) as purchase_events,
    cast(coalesce(events.reviews, 0) as integer) as reviews,
    cast(coalesce(events.likes, 0) as integer) as likes,
    cast(coalesce(events.shares, 0) as integer) as shares
from orders
full outer join events
    on orders.customer_id = events.customer_id
    and orders.activity_date = events.activity_date
