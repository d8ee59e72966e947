{#- The leakage rule and the order-value rules, written once for every model that computes values as of a date
    (int_customer_features, int_customer_sequences, customer_labels, stg_shop__orders). Each renders a plain join or
    expression in place, so a model still reads each table once per CTE (no extra scans, no extra CTEs). -#}

{% macro clv_join_cutoffs(date_column, lookback_days=none, cutoffs='cutoffs') -%}
    {#- A row joins every cutoff on or after its date: a value at cutoff c reads only rows dated <= c. With
        lookback_days, only the cutoffs less than that many days later: the row lies in (c - lookback_days, c]. -#}
    inner join {{ cutoffs }}
        on {{ date_column }} <= {{ cutoffs }}.cutoff_date
    {%- if lookback_days is not none %}
        and {{ clv_within_days(date_column, lookback_days, cutoffs ~ '.cutoff_date') }}
    {%- endif %}
{%- endmacro %}

{% macro clv_within_days(date_column, days, cutoff_column='cutoffs.cutoff_date') -%}
    {#- The "_Nd" windows: the N days ending at the cutoff, (c - N, c] (the join to the cutoffs gives the <= c). -#}
    {{ date_column }} > {{ clv_days_before(cutoff_column, days) }}
{%- endmacro %}

{% macro clv_refunds_by_order(periods, until, period_columns) -%}
    {#- What each order with sale lines here had refunded (and cancelled) by `until`, for each row of `periods`
        (grouped by its `period_columns`): a refund counts only once it has been issued. -#}
    select
        {%- for column in period_columns %}
        {{ periods }}.{{ column }},
        {%- endfor %}
        refunds.order_id,
        sum(refunds.refund_amount) as refunded,
        coalesce(sum(refunds.refund_amount) filter (where refunds.refund_kind = 'cancelled'), 0) as cancelled
    from {{ ref('stg_shop__refunds') }} as refunds
    inner join {{ periods }} on refunds.refund_date <= {{ until }}
    where refunds.is_linked
    group by all
{%- endmacro %}

{% macro clv_net_value(gross, refunded) -%}
    {#- An order's value net of its refunds so far, never below 0 (a refund larger than the sale nets it to 0). -#}
    greatest({{ gross }} - coalesce({{ refunded }}, 0), 0)
{%- endmacro %}

{% macro clv_cancelled_in_full(gross, cancelled) -%}
    {#- An order cancelled in full (by the time its cancellations are counted) is no order at all. -#}
    {{ gross }} > 0 and coalesce({{ cancelled }}, 0) >= {{ gross }}
{%- endmacro %}

{% macro clv_event_value(expression) -%}
    {#- A value computed from events: NULL (unknown, not 0) when the shop sends none (has_events false). -#}
    {{ expression if clv_flag('has_events') else 'null' }}
{%- endmacro %}
