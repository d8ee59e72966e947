-- The dates features are computed at, each with its role and the horizon its labels cover.
-- The run's window plan (ml/data/plan.py) arrives as the var `windows`: [[cutoff_date, role, horizon_days], ...]:
--   'score' (as_of, no labels yet), 'production' (as_of - H), 'train:k' / 'eval:k' (the backtest's folds),
--   'calibration:*' (a year earlier). A date can hold several roles.
-- Without `windows` (dbt run by hand), one fold at the full horizon: score, holdout and n_train_windows trains.

{%- set windows = var('windows', none) %}
{%- if windows is none or windows | length == 0 %}
    {%- set horizon = clv_int('horizon_days') %}
    {%- set windows = [] %}
    {%- for k in range(clv_int('n_train_windows') + 2) %}
        {%- do windows.append([none, "score" if k == 0 else ("holdout" if k == 1 else "train"), horizon, k]) %}
    {%- endfor %}
{%- endif %}

{%- for w in windows %}
{%- if w[0] is none %}
select
    cast({{ clv_days_before(clv_as_of(), w[3] * w[2]) }} as date) as cutoff_date,
{%- else %}
{%- if modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', w[0] | string) is none or not (w[2] | string).isdigit() %}
    {{ exceptions.raise_compiler_error("var 'windows': each entry is [YYYY-MM-DD, role, horizon_days], got " ~ w) }}
{%- endif %}
select
    date '{{ w[0] }}' as cutoff_date,
{%- endif %}
    '{{ w[1] }}' as role,
    {{ w[2] | int }} as horizon_days,
    {{ loop.index0 }} as window_index
{% if not loop.last %}union all{% endif %}
{%- endfor %}
