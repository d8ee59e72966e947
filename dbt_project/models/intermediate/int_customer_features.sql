-- customer_features, kept incrementally: one row per (customer_id, cutoff_date) for every customer first seen on
-- or before the cutoff. A cutoff is (re)built when it is new or its inputs changed (int_cutoff_inputs); the others
-- are kept, and cutoffs no longer current are removed. Leakage rule: a feature at cutoff c reads only rows dated
-- <= c (every join to cutoffs below is clv_join_cutoffs). Windows "_Nd" (clv_within_days) cover the N days ending at
-- the cutoff: (c - N, c].

{{ clv_incremental_by_cutoff() }}

with cutoffs as (

    {{ clv_cutoffs_to_build() }}

),

daily as (

    select * from {{ ref('int_customer_daily') }}

),

spine as (

    select
        customers.customer_id,
        cutoffs.cutoff_date,
        cutoffs.inputs_fingerprint,
        customers.first_seen_date,
        -- profile attributes only once the signup has happened (or when it has no date)
        {%- for attribute in ['region', 'device', 'channel'] %}
        case when customers.signup_date is null or customers.signup_date <= cutoffs.cutoff_date
            then customers.{{ attribute }} end as {{ attribute }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ ref('int_customers') }} as customers
    {{ clv_join_cutoffs('customers.first_seen_date') }}

),

order_refunds as (

    {{ clv_refunds_by_order('cutoffs', 'cutoffs.cutoff_date', ['cutoff_date']) }}

),

loose_refunds as (

    -- refunds without a sale line here (a cancellation invoice of its own, an order older than the export):
    -- they net the customer's value from their own date
    select
        refunds.customer_id,
        cutoffs.cutoff_date,
        count(*) as n_refunds,
        sum(refunds.refund_amount) as refunded,
        {%- for days in [30, 90, 365] %}
        coalesce(sum(refunds.refund_amount) filter (where {{ clv_within_days('refunds.refund_date', days) }}), 0)
            as refunded_{{ days }}d{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ ref('stg_shop__refunds') }} as refunds
    {{ clv_join_cutoffs('refunds.refund_date') }}
    where not refunds.is_linked
    group by 1, 2

),

order_stats as (

    select
        orders.customer_id,
        orders.cutoff_date,
        count(*) as n_orders,
        sum(orders.net_at_cutoff) as total_spend,
        avg(orders.net_at_cutoff) as avg_order_value,
        stddev_samp(orders.net_at_cutoff) as std_order_value,
        median(orders.net_at_cutoff) as median_order_value,
        max(orders.net_at_cutoff) as max_order_value,
        coalesce(sum(orders.quantity), 0) as total_quantity,
        avg(orders.quantity) as avg_quantity,
        count(*) filter (where orders.is_returned_by_cutoff) as n_returns,
        min(orders.order_date) as first_order_date,
        max(orders.order_date) as last_order_date,
        {%- for days in [7, 30, 90, 365] %}
        count(*) filter (where {{ clv_within_days('orders.order_date', days, 'orders.cutoff_date') }})
            as orders_{{ days }}d,
        {%- endfor %}
        {%- for days in [30, 90, 365] %}
        coalesce(sum(orders.net_at_cutoff) filter (where {{ clv_within_days('orders.order_date', days, 'orders.cutoff_date') }}), 0)
            as spend_{{ days }}d,
        {%- endfor %}
        avg(hour(orders.order_ts)) as order_hour_mean,
        {{ clv_share_of(clv_isodow('orders.order_date') ~ ' in (6, 7)') }} as weekend_order_share
    from (
        -- an order's value as known at the cutoff; an order cancelled in full by then is no order
        select
            orders.*,
            cutoffs.cutoff_date,
            coalesce(order_refunds.refunded, 0) > 0 as is_returned_by_cutoff,
            {{ clv_net_value('orders.gross_amount', 'order_refunds.refunded') }} as net_at_cutoff
        from {{ ref('stg_shop__orders') }} as orders
        {{ clv_join_cutoffs('orders.order_date') }}
        left join order_refunds
            on orders.order_id = order_refunds.order_id and cutoffs.cutoff_date = order_refunds.cutoff_date
        where not ({{ clv_cancelled_in_full('orders.gross_amount', 'order_refunds.cancelled') }})
    ) as orders
    group by 1, 2

),

order_days as (

    -- distinct order days and the gap to the previous one (lag looks backwards only: leakage-safe)
    select
        customer_id,
        activity_date as order_date,
        spend,
        {{ clv_days_between('lag(activity_date) over (partition by customer_id order by activity_date)',
                            'activity_date') }}
            as gap_days
    from daily
    where orders > 0

),

order_day_stats as (

    select
        order_days.customer_id,
        cutoffs.cutoff_date,
        count(*) as n_order_days,
        avg(order_days.gap_days) as mean_interpurchase_days,
        stddev_samp(order_days.gap_days) as std_interpurchase_days,
        sum(order_days.spend) filter (where order_days.gap_days is not null) as repeat_spend
    from order_days
    {{ clv_join_cutoffs('order_days.order_date') }}
    group by 1, 2

),

activity_stats as (

    select
        daily.customer_id,
        cutoffs.cutoff_date,
        count(*) filter (where {{ clv_within_days('daily.activity_date', 90) }}
            and (daily.orders > 0 or daily.events > 0)) as active_days_90d,  -- a refund alone is no activity
        sum(daily.views) as views_total,
        sum(daily.views) filter (where {{ clv_within_days('daily.activity_date', 30) }}) as views_30d,
        sum(daily.searches) filter (where {{ clv_within_days('daily.activity_date', 30) }}) as searches_30d,
        sum(daily.carts) as carts_total,
        sum(daily.carts) filter (where {{ clv_within_days('daily.activity_date', 30) }}) as carts_30d,
        sum(daily.reviews) as reviews_total,
        sum(daily.likes) as likes_total,
        sum(daily.shares) as shares_total,
        sum(daily.events) filter (where {{ clv_within_days('daily.activity_date', 30) }}) as events_30d,
        sum(daily.events) filter (where {{ clv_within_days('daily.activity_date', 90) }}) as events_90d,
        max(daily.activity_date) filter (where daily.events > 0) as last_event_date
    from daily
    {{ clv_join_cutoffs('daily.activity_date') }}
    group by 1, 2

)

{#- interaction features: (name, expression, type); all NULL when has_events is false -#}
{%- set interaction = [
    ('views_total', 'coalesce(activity_stats.views_total, 0)', 'integer'),
    ('views_30d', 'coalesce(activity_stats.views_30d, 0)', 'integer'),
    ('searches_30d', 'coalesce(activity_stats.searches_30d, 0)', 'integer'),
    ('carts_total', 'coalesce(activity_stats.carts_total, 0)', 'integer'),
    ('carts_30d', 'coalesce(activity_stats.carts_30d, 0)', 'integer'),
    ('cart_to_purchase', 'coalesce(order_stats.n_orders, 0) / nullif(activity_stats.carts_total, 0)', 'double'),
    ('reviews_total', 'coalesce(activity_stats.reviews_total, 0)', 'integer'),
    ('likes_total', 'coalesce(activity_stats.likes_total, 0)', 'integer'),
    ('shares_total', 'coalesce(activity_stats.shares_total, 0)', 'integer'),
    ('events_30d', 'coalesce(activity_stats.events_30d, 0)', 'integer'),
    ('events_90d', 'coalesce(activity_stats.events_90d, 0)', 'integer'),
    ('days_since_last_event', clv_days_between('activity_stats.last_event_date', 'spine.cutoff_date'), 'integer'),
] %}

select
    spine.customer_id,
    spine.cutoff_date,

    -- statistical
    cast(coalesce(order_stats.n_orders, 0) as integer) as n_orders,
    cast(coalesce(order_stats.total_spend, 0) - coalesce(loose_refunds.refunded, 0) as double) as total_spend,
    cast(order_stats.avg_order_value as double) as avg_order_value,
    cast(order_stats.std_order_value as double) as std_order_value,
    cast(order_stats.median_order_value as double) as median_order_value,
    cast(order_stats.max_order_value as double) as max_order_value,
    cast(coalesce(order_stats.total_quantity, 0) as integer) as total_quantity,
    cast(order_stats.avg_quantity as double) as avg_quantity,
    cast(coalesce(order_stats.n_returns, 0) + coalesce(loose_refunds.n_refunds, 0) as integer) as n_returns,
    cast((order_stats.n_returns + coalesce(loose_refunds.n_refunds, 0)) / order_stats.n_orders as double) as return_rate,

    -- time
    cast({{ clv_days_between('order_stats.last_order_date', 'spine.cutoff_date') }} as integer) as recency_days,
    cast({{ clv_days_between('spine.first_seen_date', 'spine.cutoff_date') }} as integer) as tenure_days,
    cast({{ clv_days_between('order_stats.first_order_date', 'spine.cutoff_date') }} as integer)
        as days_since_first_order,
    cast(order_day_stats.mean_interpurchase_days as double) as mean_interpurchase_days,
    cast(order_day_stats.std_interpurchase_days as double) as std_interpurchase_days,
    {%- for days in [7, 30, 90, 365] %}
    cast(coalesce(order_stats.orders_{{ days }}d, 0) as integer) as orders_{{ days }}d,
    {%- endfor %}
    {%- for days in [30, 90, 365] %}
    cast(coalesce(order_stats.spend_{{ days }}d, 0) - coalesce(loose_refunds.refunded_{{ days }}d, 0) as double)
        as spend_{{ days }}d,
    {%- endfor %}
    cast(coalesce(activity_stats.active_days_90d, 0) as integer) as active_days_90d,
    cast(order_stats.order_hour_mean as double) as order_hour_mean,
    cast(order_stats.weekend_order_share as double) as weekend_order_share,

    -- BTYD inputs (lifetimes convention, in days, per distinct order day)
    cast(coalesce(order_day_stats.n_order_days - 1, 0) as integer) as btyd_frequency,
    cast(coalesce({{ clv_days_between('order_stats.first_order_date', 'order_stats.last_order_date') }}, 0) as integer)
        as btyd_recency_days,
    cast({{ clv_days_between('order_stats.first_order_date', 'spine.cutoff_date') }} as integer) as btyd_age_days,
    cast(coalesce(order_day_stats.repeat_spend / nullif(order_day_stats.n_order_days - 1, 0), 0) as double)
        as btyd_monetary,

    -- context
    spine.region,
    spine.device,
    spine.channel,

    -- interaction
    {%- for name, expression, type in interaction %}
    cast({{ clv_event_value(expression) }} as {{ type }}) as {{ name }},
    {%- endfor %}

    -- bookkeeping of the incremental build
    {{ clv_build_columns('spine') }}

from spine
{%- for stats in ['order_stats', 'order_day_stats', 'activity_stats', 'loose_refunds'] %}
left join {{ stats }}
    on spine.customer_id = {{ stats }}.customer_id and spine.cutoff_date = {{ stats }}.cutoff_date
{%- endfor %}
