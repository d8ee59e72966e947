"""Property-based contract: requests generated from the API's own OpenAPI document (/docs.json), valid and invalid
ones, never get a 5xx; valid ones are accepted, invalid ones rejected, and every response has a documented status
and the documented body (schemathesis' checks)."""
from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.serving_api import shared_api


@pytest.fixture(scope="session")
def api(request, tmp_path_factory, clean_shop):
    return shared_api(request, tmp_path_factory)


@pytest.fixture(scope="module")
def api_schema(api):
    return schemathesis.openapi.from_dict(httpx.get(f"{api.url}/docs.json").json())


# (schemathesis.pytest.from_fixture cannot run under pytest 9, so the strategies drive a plain hypothesis test)
# valid feature rows run the model and its reasons (about a second a request for the stacked ensemble)
EXAMPLES = {"/predict": 60, "/predict_features": 25}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("route", list(EXAMPLES))
def test_the_prediction_routes_keep_their_contract(api, api_schema, route, mode):
    statuses = set()

    @given(case=api_schema[route]["POST"].as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES[route], deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case):
        statuses.add(case.call_and_validate(base_url=api.url, headers=api.headers).status_code)

    check()
    assert statuses and max(statuses) < 500
    if mode is GenerationMode.NEGATIVE:  # invalid bodies, and requests without the declared key
        assert statuses <= {400, 401} and 400 in statuses
