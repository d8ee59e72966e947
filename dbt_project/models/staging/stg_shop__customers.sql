-- One row per customer_id, typed; when a customer appears twice the earliest signup wins.

with source as (

    select * from {{ source('shop', 'customers') }}

),

typed as (

    select
        cast(customer_id as {{ clv_string_type() }}) as customer_id,
        cast(signup_ts as timestamp) as signup_ts,
        cast(signup_ts as date) as signup_date,
        nullif(trim(cast(region as {{ clv_string_type() }})), '') as region,
        nullif(trim(cast(device as {{ clv_string_type() }})), '') as device,
        nullif(trim(cast(channel as {{ clv_string_type() }})), '') as channel
    from source
    where customer_id is not null

),

-- (a ranked CTE rather than `qualify`, which Spark lacks; nulls last spelled out: Spark sorts them first)
ranked as (

    select
        typed.*,
        row_number() over (
            partition by customer_id
            order by signup_ts nulls last, region nulls last, device nulls last, channel nulls last
        ) as profile_rank
    from typed

)

select customer_id, signup_ts, signup_date, region, device, channel
from ranked
where profile_rank = 1
