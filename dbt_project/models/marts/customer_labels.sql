-- Targets for every customer in customer_features at the cutoffs whose horizon has been observed
-- (cutoff_date + H <= as_of: the holdout and train cutoffs): orders placed in (c, c + H] and their value,
-- net of the refunds issued by the end of the horizon.

{%- set horizon = clv_int('horizon_days') %}

with labelled_cutoffs as (

    select cutoff_date
    from {{ ref('cutoffs') }}
    where cutoff_date + {{ horizon }} <= {{ clv_as_of() }}

),

population as (

    select features.customer_id, features.cutoff_date
    from {{ ref('customer_features') }} as features
    inner join labelled_cutoffs on features.cutoff_date = labelled_cutoffs.cutoff_date

),

future as (

    select
        orders.customer_id,
        labelled_cutoffs.cutoff_date,
        count(*) as future_orders,
        sum(greatest(orders.gross_amount - case
            when orders.returned_date <= labelled_cutoffs.cutoff_date + {{ horizon }} then orders.returned_amount
            else 0 end, 0)) as future_value
    from {{ ref('stg_shop__orders') }} as orders
    inner join labelled_cutoffs
        on orders.order_date > labelled_cutoffs.cutoff_date
        and orders.order_date <= labelled_cutoffs.cutoff_date + {{ horizon }}
    group by 1, 2

)

select
    population.customer_id,
    population.cutoff_date,
    cast(coalesce(future.future_value, 0) as double) as future_value,
    cast(coalesce(future.future_orders, 0) as integer) as future_orders,
    coalesce(future.future_orders, 0) > 0 as returned
from population
left join future
    on population.customer_id = future.customer_id and population.cutoff_date = future.cutoff_date
