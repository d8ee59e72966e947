{#- Fails with every row where the boolean SQL `expression` is false (NULL counts as passing, like not_null's complement). -#}
{% test expression_is_true(model, expression, column_name=none) %}

select *
from {{ model }}
where not ({{ expression }})

{% endtest %}
