-- The dates features are computed at: window_index k sits k horizons before as_of.
--   k = 0: 'score' (as_of) | k = 1: 'holdout' (as_of - H) | k = 2 .. n_train_windows + 1: 'train'

{%- set horizon = clv_int('horizon_days') %}
{%- set n_train = clv_int('n_train_windows') %}

{%- for k in range(n_train + 2) %}
select
    cast({{ clv_as_of() }} - {{ k * horizon }} as date) as cutoff_date,
    '{{ "score" if k == 0 else ("holdout" if k == 1 else "train") }}' as role,
    {{ k }} as window_index
{% if not loop.last %}union all{% endif %}
{%- endfor %}
