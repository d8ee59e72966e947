-- Every customer id seen in customers, orders or events, with the date we first knew of them. Someone known only by
-- a refund (of an order older than the export) is no customer here; the refund's money is still in staging.

with profiles as (

    select customer_id, signup_date, region, device, channel
    from {{ ref('stg_shop__customers') }}
    where {{ clv_flag('has_customers') }}

),

activity as (

    select
        customer_id,
        min(activity_date) filter (where orders > 0) as first_order_date,
        min(activity_date) filter (where events > 0) as first_event_date
    from {{ ref('int_customer_daily') }}
    group by 1
    having min(activity_date) filter (where orders > 0 or events > 0) is not null

)

select
    coalesce(profiles.customer_id, activity.customer_id) as customer_id,
    least(profiles.signup_date, activity.first_order_date, activity.first_event_date) as first_seen_date,
    profiles.signup_date,
    activity.first_order_date,
    activity.first_event_date,
    profiles.region,
    profiles.device,
    profiles.channel
from profiles
full outer join activity on profiles.customer_id = activity.customer_id
