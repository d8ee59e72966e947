-- Interaction events, typed, lower-cased and de-duplicated (exact duplicates collapse to one row).

with source as (

    select * from {{ source('shop', 'events') }}

)

select distinct
    cast(customer_id as {{ clv_string_type() }}) as customer_id,
    cast(event_ts as timestamp) as event_ts,
    cast(event_ts as date) as event_date,
    lower(trim(cast(event_type as {{ clv_string_type() }}))) as event_type
from source
where customer_id is not null
  and event_ts is not null
  and event_type is not null
