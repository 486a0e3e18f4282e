"""The service does what its OpenAPI document says (issue 14, finding 13): the requests that showed it did not,
then schemathesis with its default checks against the served /docs.json and the real `bentoml serve`.

Runs on the `svc` fixture of tests/e2e/test_service_http.py.
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import positive_data_acceptance

from serving.config import ServingConfig
from tests.e2e.test_service_http import svc  # noqa: F401 (the served home, shared fixture)

EXAMPLES = 12  # per operation: bounded so the whole run stays within about a minute
# Checks a schema cannot make hold, by operation. rank_offers: a recorded rank's `context.time` must lie within
# offer_loop.time_tolerance_s of the server's clock (a bound relative to now, which JSON Schema cannot state),
# so schema-valid times are refused.
SEMANTIC = {"/rank_offers": [positive_data_acceptance]}


def _spec(c) -> dict:
    r = requests.get(c.url + "/docs.json", timeout=10)
    assert r.status_code == 200
    return r.json()


def _body(op: dict) -> dict:
    return op["requestBody"]["content"]["application/json"]["schema"]["properties"]


def test_finding_13_the_spec_says_what_the_service_does(svc) -> None:  # noqa: F811
    c, member, cfg = svc["client"], svc["raw_ids"][30], ServingConfig.load()
    spec = _spec(c)
    assert {"bearerAuth", "apiKeyHeader"} <= set(spec["components"].get("securitySchemes", {}))
    persona = spec["paths"]["/persona"]["post"]
    assert persona["security"] and {"401", "403", "413", "415", "422"} <= set(persona["responses"])
    assert spec["paths"]["/noop"]["post"]["security"] == []
    # a validation error's `detail` is a list: the declared 400 body must allow it
    bad = c.post("/recommend", {"member_id": member, "k": 0})
    assert bad.status_code == 400 and isinstance(bad.json()["detail"], list)
    ref = persona["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
    error = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"type": "array", "items": {"type": "object"}} in error["properties"]["detail"]["anyOf"]
    assert "text/html" in spec["paths"]["/report"]["post"]["responses"]["200"]["content"]
    assert _body(spec["paths"]["/lookalike"]["post"])["seeds"].get("nullable") is True
    assert _body(spec["paths"]["/recommend"]["post"])["k"]["maximum"] == cfg.limits.max_k
    assert _body(spec["paths"]["/events"]["post"])["events"]["maxItems"] == cfg.events.max_batch
    assert '"type": "null"' not in requests.get(c.url + "/docs.json", timeout=10).text  # not OpenAPI 3.0
    for body in ({"k": True}, {"k": "5"}, {"exclude_bought": "yes"}):  # strict: no coercion
        r = c.post("/recommend", {"member_id": member, **body})
        assert r.status_code == 400, (body, r.text)
    options = requests.options(c.url + "/healthz", timeout=10)
    assert options.status_code == 405 and "POST" in options.headers["allow"], options.headers
    assert requests.get(c.url + "/healthz", timeout=10).status_code == 200
    assert "get" in spec["paths"]["/healthz"]


@pytest.fixture(scope="module")
def served_spec(svc):  # noqa: F811
    from serving.auth import create_key

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TAILOR_HOME", str(svc["home"]))
        svc["all_scopes"] = create_key("contract-test", ["read", "events", "report", "admin"])
    return schemathesis.openapi.from_url(svc["client"].url + "/docs.json")


def test_schemathesis_default_checks_pass_against_the_served_spec(svc, served_spec) -> None:  # noqa: F811
    """Every operation of the served document, data that fits it and data that does not, all default checks.

    (A loop over the operations rather than `schemathesis.pytest.from_fixture`: its lazy parametrization sets
    `node._nodeid`, which pytest 9.2 no longer has.)"""
    headers = {"Authorization": f"Bearer {svc['all_scopes']}"}
    failures = []
    for result in served_spec.get_all_operations():
        op = result.ok()
        for mode in schemathesis.GenerationMode:

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
            def run(case: schemathesis.Case) -> None:
                case.call_and_validate(headers=headers, timeout=60, excluded_checks=SEMANTIC.get(case.path, []))

            try:
                run()
            except Unsatisfiable:  # negative data for an operation that takes no input: there is none
                continue
            except (Exception, BaseExceptionGroup) as exc:  # every operation's failure, not only the first
                failures.append(f"{mode.value} {op.method.upper()} {op.path}: {exc}")
    assert not failures, "\n\n".join(failures)
