"""The rewritten OpenAPI document and the 405 answers (serving/contract.py), in process (issue 14, finding 13)."""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from serving.contract import Contract, openapi

ROUTES = {"/persona": "read", "/healthz": None}
GENERATED = {
    "openapi": "3.0.2",
    "paths": {
        "/persona": {
            "post": {
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["member_id"],
                                "properties": {
                                    "member_id": {"type": "string"},
                                    "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
                                    "seeds": {"type": "array", "items": {"type": "string"}, "default": None},
                                },
                            }
                        }
                    }
                },
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/healthz": {"post": {"responses": {"200": {"description": "ok"}}}},
    },
    "components": {"schemas": {}},
}


def test_the_document_declares_keys_errors_and_nullables() -> None:
    spec = openapi(GENERATED, ROUTES, 1000)
    assert set(spec["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyHeader"}
    persona = spec["paths"]["/persona"]["post"]
    assert persona["security"] and "scope `read`" in persona["description"]
    assert {"400", "401", "403", "413", "415", "422", "429"} <= set(persona["responses"])
    assert spec["paths"]["/healthz"]["post"]["security"] == []
    assert "401" not in spec["paths"]["/healthz"]["post"]["responses"]
    assert "get" in spec["paths"]["/healthz"]
    props = persona["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert props["note"] == {"type": "string", "default": None, "nullable": True}
    assert props["seeds"]["nullable"] is True and persona["requestBody"]["required"] is True
    assert '"type": "null"' not in json.dumps(spec)
    assert GENERATED["paths"]["/persona"]["post"]["responses"] == {"200": {"description": "ok"}}  # not mutated


def test_docs_json_is_served_rewritten_and_other_methods_get_the_full_allow() -> None:
    async def docs(request):
        return JSONResponse(GENERATED)

    async def ok(request):
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/docs.json", docs), Route("/healthz", ok), Route("/persona", ok, methods=["POST"])])
    client = TestClient(Contract(app, routes=ROUTES, max_body=1000))
    assert "securitySchemes" in client.get("/docs.json").json()["components"]
    r = client.options("/healthz")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD, POST"
    r = client.put("/persona")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert client.get("/healthz").status_code == 200
