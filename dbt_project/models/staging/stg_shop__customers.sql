-- One row per customer_id, typed; when a customer appears twice the earliest signup wins.

with source as (

    select * from {{ source('shop', 'customers') }}

),

typed as (

    select
        cast(customer_id as varchar) as customer_id,
        cast(signup_ts as timestamp) as signup_ts,
        cast(signup_ts as date) as signup_date,
        nullif(trim(cast(region as varchar)), '') as region,
        nullif(trim(cast(device as varchar)), '') as device,
        nullif(trim(cast(channel as varchar)), '') as channel
    from source
    where customer_id is not null

)

select *
from typed
qualify row_number() over (
    partition by customer_id
    order by signup_ts nulls last, region, device, channel
) = 1
