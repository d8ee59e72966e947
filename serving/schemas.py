"""The API's request and response shapes: what the OpenAPI schema shows and what every request is checked against.

Requests are strict: unknown fields, strings where numbers belong, NaN or infinity, values outside the feature's
domain (a negative count, number of days or order value), empty or oversized lists are a 400 naming the field and
the row, before any model code runs.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from ml.data.windows import CATEGORICAL, EVENT_TYPES, SEQUENCE_CHANNELS

MAX_IDS = 10_000  # customer ids per /predict request
MAX_ROWS = 1_000  # feature rows per /predict_features request
MAX_WEEKS = 520
MAX_EVENTS = 1_000  # events per row; the served model reads the newest of them (its max_events)
MAX_MAGNITUDE = 1e12  # no count, amount or day number of a customer is larger; bigger is a unit or parsing error

# customer_features columns (dbt mart) the model may read; numbers are counts, amounts, days or shares
NUMERIC_FEATURES = [
    "n_orders", "total_spend", "avg_order_value", "std_order_value", "median_order_value", "max_order_value",
    "total_quantity", "avg_quantity", "n_returns", "return_rate", "recency_days", "tenure_days",
    "days_since_first_order", "mean_interpurchase_days", "std_interpurchase_days", "orders_7d", "orders_30d",
    "orders_90d", "orders_365d", "spend_30d", "spend_90d", "spend_365d", "active_days_90d", "order_hour_mean",
    "weekend_order_share", "btyd_frequency", "btyd_recency_days", "btyd_age_days", "btyd_monetary", "views_total",
    "views_30d", "searches_30d", "carts_total", "carts_30d", "cart_to_purchase", "reviews_total", "likes_total",
    "shares_total", "events_30d", "events_90d", "days_since_last_event",
]
# never NULL in the mart whatever the shop exports: a row without them is not a customer's history
REQUIRED_FEATURES = ["n_orders", "total_spend", "tenure_days"]
# the features that can be negative (dbt_project/models/intermediate/int_customer_features.sql): spend nets refunds
# without a sale line from their own date, and a repeat order day's spend nets that day's refunds. Every other
# feature is a count, a number of days, an order's net value (floored at 0), a quantity, a share or an hour.
SIGNED_FEATURES = ["total_spend", "spend_30d", "spend_90d", "spend_365d", "btyd_monetary"]
# the rest of the domain: shares of orders and the mean hour of day (0-23)
UPPER_BOUNDS = {"weekend_order_share": 1.0, "order_hour_mean": 23.0}

STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

CustomerId = Annotated[str, Field(min_length=1, max_length=128)]
LifecycleStage = Literal["potential", "new", "active", "loyal", "at_risk", "churned"]
Number = Annotated[float, Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]  # negative: net spend after refunds
Week = Annotated[list[Number], Field(min_length=len(SEQUENCE_CHANNELS), max_length=len(SEQUENCE_CHANNELS))]

Days = Annotated[int, Field(ge=0, le=100_000)]


class Event(BaseModel):
    """One event of a customer's stream, as in the customer_events mart."""
    model_config = STRICT

    event_type: Literal[tuple(EVENT_TYPES)]
    days_since_previous: Days | None = Field(None, description="Days since the previous event; null for the first.")
    days_before_cutoff: Days = Field(description="Days from the event to the scoring date.")
    amount: Annotated[float, Field(ge=0, le=MAX_MAGNITUDE)] = Field(
        0.0, description="The order's net amount; 0 for a behaviour event.")


# weeks of activity the served model reads; set by the service when a model version loads
_sequence_weeks: dict[str, int] = {}


def expect_sequence_weeks(weeks: int) -> None:
    _sequence_weeks["weeks"] = weeks


def sequence_weeks() -> int | None:
    return _sequence_weeks.get("weeks")


class PredictRequest(BaseModel):
    model_config = STRICT

    customer_ids: list[CustomerId] = Field(
        min_length=1, max_length=MAX_IDS, description="Customer ids of the scored snapshot; duplicates are answered twice.")
    reasons: bool = Field(True, description="Include the top reasons per customer.")


def _domain(name: str):
    """A feature's type: any number for the signed ones, else from 0 up to its bound."""
    if name in SIGNED_FEATURES:
        return Number
    return Annotated[float, Field(ge=0, le=UPPER_BOUNDS.get(name, MAX_MAGNITUDE))]


_feature_fields = {
    name: (_domain(name), Field(...)) if name in REQUIRED_FEATURES else (_domain(name) | None, Field(None))
    for name in NUMERIC_FEATURES
}
_category_fields = {name: (Annotated[str, Field(max_length=64)] | None, Field(None)) for name in CATEGORICAL}

_CustomerFeaturesBase = create_model(
    "_CustomerFeaturesBase", __config__=STRICT,
    customer_id=(CustomerId | None, Field(None, description="Echoed back; not looked up.")),
    reasons=(bool, Field(True, description="Include the top reasons (they cost one model run per feature group).")),
    weekly_activity=(list[Week] | None, Field(
        None, max_length=MAX_WEEKS,
        description="One row per week, oldest first, the last ending at the scoring date: "
                    f"[{', '.join(SEQUENCE_CHANNELS)}]. Exactly as many weeks as the served model reads (the "
                    "document served at /docs.json says how many); omitted = no activity in those weeks.")),
    events=(list[Event] | None, Field(
        None, max_length=MAX_EVENTS,
        description="The customer's most recent events, newest first (read by a model over event streams, "
                    "deep_transformer; the others ignore them); omitted = no events.")),
    **_feature_fields, **_category_fields,
)


class CustomerFeatures(_CustomerFeaturesBase):
    """One customer's features at the scoring date, as in the customer_features mart; missing = unknown."""

    @field_validator("weekly_activity")
    @classmethod
    def _weeks_of_the_model(cls, value: list[list[float]] | None) -> list[list[float]] | None:
        weeks = sequence_weeks()
        if value is not None and weeks is not None and len(value) != weeks:
            raise ValueError(f"the served model reads {weeks} weeks (oldest first), got {len(value)}")
        return value


class FeaturesRequest(BaseModel):
    model_config = STRICT

    rows: list[CustomerFeatures] = Field(min_length=1, max_length=MAX_ROWS)


class Reason(BaseModel):
    feature: str
    value: float | None = Field(
        description="The customer's value of the feature; null for the weekly activity, a category or a missing value.")
    effect: float = Field(description="Change in expected value vs a typical customer.")
    text: str


class Prediction(BaseModel):
    customer_id: str | None
    predicted_value: float | None = Field(description="Expected value over the horizon.")
    p_return: float | None = Field(description="Probability of at least one purchase over the horizon.")
    value_p10: float | None
    value_p50: float | None
    value_p90: float | None
    lifecycle_stage: LifecycleStage | None
    model_version: str
    reasons: list[Reason] | None = Field(description="Largest effects first; null when not requested.")
