-- One row per (customer_id, activity_date) with any order, refund or known event that day.

-- spend is a cash view: gross order value on the order day, minus refunds and cancellations on the day they were
-- issued (an order cancelled in full is no order, but its money still passes through here, netting to zero).

{#- the event types counted, each with its column; any other type is ignored -#}
{%- set event_counts = [
    ('view', 'views'), ('search', 'searches'), ('add_to_cart', 'carts'), ('purchase', 'purchase_events'),
    ('review', 'reviews'), ('like', 'likes'), ('share', 'shares'),
] %}

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
        {%- for event_type, column in event_counts %}
        count(*) filter (where event_type = '{{ event_type }}') as {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ ref('stg_shop__events') }}
    where {{ clv_flag('has_events') }}
      and event_type in ('{{ event_counts | map(attribute=0) | join("', '") }}')
    group by 1, 2

)

select
    coalesce(orders.customer_id, events.customer_id) as customer_id,
    coalesce(orders.activity_date, events.activity_date) as activity_date,
    cast(coalesce(orders.orders, 0) as integer) as orders,
    cast(coalesce(orders.spend, 0) as double) as spend,
    cast(coalesce(orders.quantity, 0) as integer) as quantity,
    {%- for column in ['events'] + event_counts | map(attribute=1) | list %}
    cast(coalesce(events.{{ column }}, 0) as integer) as {{ column }}{{ ',' if not loop.last }}
    {%- endfor %}
from orders
full outer join events
    on orders.customer_id = events.customer_id
    and orders.activity_date = events.activity_date
