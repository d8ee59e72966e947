{{ config(meta={'dagster': {'asset_key': ['stg_shop__orders']}}) }}

-- Money is accounted like rows: what staging calls sales minus refunds is, to the cent, the sum of the lines in
-- raw.orders. A row returned here is money lost (or made up) between ingestion and the models.

with raw_money as (

    select coalesce(sum(cast(amount as decimal(38, 6))), 0) as amount from {{ source('shop', 'orders') }}

),

staged as (

    select
        (select coalesce(sum(cast(gross_amount as decimal(38, 6))), 0) from {{ ref('stg_shop__orders') }})
        - (select coalesce(sum(cast(refund_amount as decimal(38, 6))), 0) from {{ ref('stg_shop__refunds') }})
        as amount

)

select raw_money.amount as raw_amount, staged.amount as staged_amount
from raw_money cross join staged
where round(raw_money.amount, 2) <> round(staged.amount, 2)
