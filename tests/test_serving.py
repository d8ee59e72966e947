"""The prediction API for real: `bentoml serve` on loopback, answering from the model in the BentoML store."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def api(clean_shop):
    port = free_port()
    bentoml = Path(sys.executable).parent / "bentoml"
    proc = subprocess.Popen(
        [str(bentoml), "serve", "serving.service:ClvService", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"bentoml serve exited: {proc.stdout.read()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("the prediction API did not become ready in 90 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_readyz(api):
    assert httpx.get(f"{api}/readyz").status_code == 200


def test_predict_equals_the_model_in_process(api):
    from serving import store

    served = store.load()
    ids = list(served.snapshot.customer_ids[[0, 7, 42]])
    response = httpx.post(f"{api}/predict", json={"customer_ids": ids}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [row["customer_id"] for row in body] == ids

    pos = [int(np.flatnonzero(served.snapshot.customer_ids == c)[0]) for c in ids]
    expected = served.model.predict(served.snapshot.features.iloc[pos].reset_index(drop=True),
                                    served.snapshot.sequences[pos])
    for row, (_, want) in zip(body, expected.iterrows()):
        assert row["predicted_value"] == pytest.approx(want["predicted_value"], rel=1e-6)
        assert row["p_return"] == pytest.approx(want["p_return"], rel=1e-6)
        assert row["model_version"] == served.version
        assert row["lifecycle_stage"] in {"potential", "new", "active", "loyal", "at_risk", "churned"}


def test_unknown_customer_is_a_clear_4xx(api):
    response = httpx.post(f"{api}/predict", json={"customer_ids": ["NOT-A-CUSTOMER"]}, timeout=30)
    assert response.status_code == 404
    assert "unknown customer id" in response.text and "NOT-A-CUSTOMER" in response.text


def test_malformed_body_is_a_4xx(api):
    response = httpx.post(f"{api}/predict", json={"ids": "x"}, timeout=30)
    assert 400 <= response.status_code < 500
