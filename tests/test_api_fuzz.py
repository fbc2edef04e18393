"""Schemathesis against the API's own OpenAPI schema: whatever a client sends, no 500, and every error
answer is JSON that says what is wrong (issue 13). Bounded: a fixed number of examples, well under a minute."""
from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from modules.job_limits import JobLimits  # noqa: E402

EXAMPLES = 400
LOOPBACK = {"host": "127.0.0.1"}  # the security guard serves loopback names only


@pytest.fixture(scope="module")
def api_app(backend, tmp_path_factory):
    from modules import cmd_args
    from modules.api.server import create_api_app

    work = tmp_path_factory.mktemp("api-fuzz")
    args = cmd_args.parse_args(["--nowebui", "--models-dir", str(backend.config.models_dir),
                                "--outdir", str(work / "outputs"), "--skip-load-model-at-start"])
    saved = backend.config.limits
    backend.config.limits = JobLimits(max_pixels=64 * 64, max_batch=1, max_steps=2)  # any job it finds is tiny
    try:
        app, _api = create_api_app(backend, args, work / "config.json")
        yield app
    finally:
        backend.config.limits = saved


def test_no_input_gives_a_500_or_an_error_without_a_json_body(api_app):
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_asgi("/openapi.json", api_app, headers=LOOPBACK)
    cases = st.one_of(schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE))
    seen: dict[str, int] = {}

    @given(case=cases)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def check(case):
        response = case.call(headers=LOOPBACK)
        where = f"{case.method} {case.formatted_path}"
        seen[where] = seen.get(where, 0) + 1
        assert response.status_code < 500, f"{where} -> {response.status_code}: {response.text[:500]}"
        if response.status_code >= 400:
            error = response.json()  # JSON, whatever went wrong
            assert isinstance(error, dict) and error.get("detail"), f"{where}: {response.text[:500]}"

    check()
    assert len(seen) >= 10  # the examples reached most routes, not one
