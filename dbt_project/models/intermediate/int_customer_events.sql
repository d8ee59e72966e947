-- customer_events, kept incrementally like int_customer_sequences (a cutoff is rebuilt when new or when its inputs
-- changed): each customer's most recent max_events events on or before each cutoff, orders and behaviour events in
-- one stream, newest first (position 0 is the last event before the cutoff, so a shorter stream is a prefix).
-- An order is as known at the cutoff: net of the refunds issued by then; one cancelled in full by then is no order.

{{ clv_incremental_by_cutoff() }}

{%- set max_events = clv_int('max_events') %}
{#- the behaviour events of int_customer_daily; an order is the stream's own type 'order' -#}
{%- set event_types = ['view', 'search', 'add_to_cart', 'purchase', 'review', 'like', 'share'] %}

with cutoffs as (

    {{ clv_cutoffs_to_build() }}

),

order_refunds as (

    {{ clv_refunds_by_order('cutoffs', 'cutoffs.cutoff_date', ['cutoff_date']) }}

),

stream as (

    select
        orders.customer_id,
        cutoffs.cutoff_date,
        cutoffs.inputs_fingerprint,
        orders.order_ts as event_ts,
        orders.order_date as event_date,
        'order' as event_type,
        orders.order_id as tie_break,  -- two orders at one moment still have one order
        cast({{ clv_net_value('orders.gross_amount', 'order_refunds.refunded') }} as double) as amount
    from {{ ref('stg_shop__orders') }} as orders
    {{ clv_join_cutoffs('orders.order_date') }}
    left join order_refunds
        on orders.order_id = order_refunds.order_id and cutoffs.cutoff_date = order_refunds.cutoff_date
    where not ({{ clv_cancelled_in_full('orders.gross_amount', 'order_refunds.cancelled') }})
      and {{ max_events }} > 0  -- max_events 0: no member reads the streams, none are built (a constant: pruned)

    union all

    select
        events.customer_id,
        cutoffs.cutoff_date,
        cutoffs.inputs_fingerprint,
        events.event_ts,
        events.event_date,
        events.event_type,
        '' as tie_break,  -- staging de-duplicated (customer, moment, type)
        cast(0 as double) as amount
    from {{ ref('stg_shop__events') }} as events
    {{ clv_join_cutoffs('events.event_date') }}
    where {{ clv_flag('has_events') }}
      and {{ max_events }} > 0
      and events.event_type in ('{{ event_types | join("', '") }}')

),

ranked as (

    -- the gap is taken over the whole stream before the cap (lag looks backwards only: leakage-safe)
    select
        stream.*,
        {{ clv_days_between('lag(event_date) over (partition by customer_id, cutoff_date '
                            ~ 'order by event_ts, event_type, tie_break)', 'event_date') }} as days_since_previous,
        row_number() over (partition by customer_id, cutoff_date
                           order by event_ts desc, event_type desc, tie_break desc) - 1 as position
    from stream

)

select
    customer_id,
    cutoff_date,
    cast(position as integer) as position,
    event_type,
    cast(days_since_previous as integer) as days_since_previous,
    cast({{ clv_days_between('event_date', 'cutoff_date') }} as integer) as days_before_cutoff,
    amount,
    {{ clv_build_columns() }}
from ranked
where position < {{ max_events }}
