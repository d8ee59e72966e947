-- Targets for every customer in customer_features at the cutoffs whose horizon H (the cutoff's horizon_days) has
-- been observed (cutoff_date + H <= as_of): orders placed in (c, c + H] and their value, net of
-- the refunds issued by the end of the horizon, less refunds in the horizon that have no sale line (floored at 0).
-- An order cancelled in full by then is no order.

with labelled_cutoffs as (

    select distinct cutoff_date, horizon_days
    from {{ ref('cutoffs') }}
    where {{ clv_days_after('cutoff_date', 'horizon_days') }} <= {{ clv_as_of() }}

),

population as (

    select features.customer_id, features.cutoff_date, labelled_cutoffs.horizon_days
    from {{ ref('customer_features') }} as features
    inner join labelled_cutoffs on features.cutoff_date = labelled_cutoffs.cutoff_date

),

order_refunds as (

    -- refunds issued by the end of the horizon, per order placed in it
    {{ clv_refunds_by_order('labelled_cutoffs',
                            clv_days_after('labelled_cutoffs.cutoff_date', 'labelled_cutoffs.horizon_days'),
                            ['cutoff_date', 'horizon_days']) }}

),

future_orders as (

    select
        orders.customer_id,
        labelled_cutoffs.cutoff_date,
        labelled_cutoffs.horizon_days,
        count(*) as future_orders,
        sum({{ clv_net_value('orders.gross_amount', 'order_refunds.refunded') }}) as future_value
    from {{ ref('stg_shop__orders') }} as orders
    inner join labelled_cutoffs
        on orders.order_date > labelled_cutoffs.cutoff_date
        and orders.order_date <= {{ clv_days_after('labelled_cutoffs.cutoff_date', 'labelled_cutoffs.horizon_days') }}
    left join order_refunds
        on orders.order_id = order_refunds.order_id and labelled_cutoffs.cutoff_date = order_refunds.cutoff_date
        and labelled_cutoffs.horizon_days = order_refunds.horizon_days
    where not ({{ clv_cancelled_in_full('orders.gross_amount', 'order_refunds.cancelled') }})
    group by 1, 2, 3

),

loose_refunds as (

    -- refunds in the horizon without a sale line here net the customer's value in it
    select refunds.customer_id, labelled_cutoffs.cutoff_date, labelled_cutoffs.horizon_days,
        sum(refunds.refund_amount) as refunded
    from {{ ref('stg_shop__refunds') }} as refunds
    inner join labelled_cutoffs
        on refunds.refund_date > labelled_cutoffs.cutoff_date
        and refunds.refund_date <= {{ clv_days_after('labelled_cutoffs.cutoff_date', 'labelled_cutoffs.horizon_days') }}
    where not refunds.is_linked
    group by 1, 2, 3

)

select
    population.customer_id,
    population.cutoff_date,
    population.horizon_days,
    cast(greatest(coalesce(future_orders.future_value, 0) - coalesce(loose_refunds.refunded, 0), 0) as double)
        as future_value,
    cast(coalesce(future_orders.future_orders, 0) as integer) as future_orders,
    coalesce(future_orders.future_orders, 0) > 0 as returned
from population
left join future_orders
    on population.customer_id = future_orders.customer_id and population.cutoff_date = future_orders.cutoff_date
    and population.horizon_days = future_orders.horizon_days
left join loose_refunds
    on population.customer_id = loose_refunds.customer_id and population.cutoff_date = loose_refunds.cutoff_date
    and population.horizon_days = loose_refunds.horizon_days
