-- customer_sequences, kept incrementally like int_customer_features (a cutoff is rebuilt when new or when its
-- inputs changed): weekly activity over the sequence_weeks weeks before each cutoff, long and sparse (non-empty
-- weeks only). week_index 0 is the oldest week; sequence_weeks - 1 is the 7 days ending at the cutoff, (c - 7, c].

{{ clv_incremental_by_cutoff() }}

{%- set weeks = clv_int('sequence_weeks') %}

with cutoffs as (

    {{ clv_cutoffs_to_build() }}

),

bucketed as (

    select
        daily.customer_id,
        cutoffs.cutoff_date,
        cutoffs.inputs_fingerprint,
        {{ weeks - 1 }} - {{ clv_int_div(clv_days_between('daily.activity_date', 'cutoffs.cutoff_date'), 7) }}
            as week_index,
        daily.orders,
        daily.spend,
        daily.views,
        daily.searches,
        daily.carts,
        daily.reviews + daily.likes + daily.shares as engagements
    from {{ ref('int_customer_daily') }} as daily
    {{ clv_join_cutoffs('daily.activity_date', lookback_days=7 * weeks) }}

)

select
    customer_id,
    cutoff_date,
    cast(week_index as integer) as week_index,
    cast(sum(orders) as integer) as orders,
    cast(sum(spend) as double) as spend,
    {%- for name in ['views', 'searches', 'carts', 'engagements'] %}
    cast({{ clv_event_value('sum(' ~ name ~ ')') }} as integer) as {{ name }},
    {%- endfor %}
    {{ clv_build_columns() }}
from bucketed
group by customer_id, cutoff_date, week_index, inputs_fingerprint
having sum(orders) > 0 or sum(views + searches + carts + engagements) > 0
