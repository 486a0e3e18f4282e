"""The HTTP contract: the OpenAPI document at /docs.json says what the service does, and methods are advertised.

BentoML generates the document from the request and response models, but it knows nothing of what runs around
the endpoints: the API keys (`serving.http_guard`), the errors they and the body limit answer (401, 403, 408,
413, 415, 429), our JSON error body, `/report`'s HTML, BentoML's own `GET /healthz`. It also writes optional
fields as `anyOf [..., {"type": "null"}]`, which OpenAPI 3.0 does not know. `openapi` rewrites the generated
document; `Contract` serves the rewritten one and answers a method a route does not take with 405 and the
route's full `Allow` (Starlette's answer named only the first route's methods: `OPTIONS /healthz` said
GET, HEAD though POST /healthz is ours).
"""

from __future__ import annotations

import json
from typing import Any

from serving.schemas import Event

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "what went wrong (never a raw member id)"},
        "field": {"type": "string", "description": "the request field at fault, when there is one"},
        "detail": {
            "description": "a validation error's items (loc, msg, type) or a refusal's explanation",
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}],
        },
    },
    "additionalProperties": True,
}
STATUS = {
    400: "Bad request: malformed JSON or a field out of its bounds (`detail` lists the fields)",
    401: "Missing, malformed, unknown, expired or revoked API key",
    403: "The key lacks the route's scope, or may read only its own member",
    404: "Not found (or the member was erased)",
    408: "The request body did not arrive in time",
    413: "Request body too large",
    415: "Unsupported media type: send application/json",
    422: "The request is well formed but cannot be answered as asked",
    429: "Rate limit of the key exceeded (see Retry-After)",
    500: "Internal error",
    501: "Not available in this build",
}
KEYED = (401, 403, 429)
SECURITY = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def openapi(spec: dict[str, Any], routes: dict[str, str | None], max_body: int) -> dict[str, Any]:
    """The generated document made true to the service (`routes`: path -> scope, None for no key)."""
    spec = _nullable(json.loads(json.dumps(spec)))
    components = spec.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY)
    components.setdefault("schemas", {})["Error"] = ERROR
    components["schemas"]["Event"] = _nullable(Event.model_json_schema())  # what each item of /events should be
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, scope in routes.items():
        op = spec.get("paths", {}).get(path, {}).get("post")
        if op is None:
            continue
        codes = [400, 404, 408, 413, 415, 422, 500, *(KEYED if scope else ())] + ([501] if path == "/report" else [])
        body = op.get("requestBody", {})
        if body.get("content", {}).get("application/json", {}).get("schema", {}).get("required"):
            body["required"] = True  # a missing body is a missing required field: 400
        responses = op.setdefault("responses", {})
        for code in sorted(codes):
            text = STATUS[code] + (f" (limit {max_body} bytes)" if code == 413 else "")
            responses[str(code)] = {"description": text, "content": error}
        op["security"] = [{"bearerAuth": []}, {"apiKeyHeader": []}] if scope else []
        if scope:
            op["description"] = f"{op.get('description', '')}\n\nNeeds an API key with scope `{scope}`.".strip()
    report = spec.get("paths", {}).get("/report", {}).get("post")
    if report is not None:
        html = {"text/html": {"schema": {"type": "string"}}}
        report["responses"]["200"] = {"description": "The member's report, an HTML page", "content": html}
    events = spec.get("paths", {}).get("/events", {}).get("post")
    if events is not None:
        body = events["requestBody"]["content"]["application/json"]["schema"]["properties"]["events"]
        body["items"] = {"type": "object", "description": "an `Event`; one that is not is listed in `rejected`"}
    look = spec.get("paths", {}).get("/lookalike", {}).get("post")
    if look is not None:  # seeds or a segment: one of them must be given (else 422)
        body = look["requestBody"]["content"]["application/json"]["schema"]
        body["anyOf"] = [
            {"required": ["seeds"], "properties": {"seeds": {"type": "array"}}},
            {"required": ["segment"], "properties": {"segment": {"type": "string"}}},
        ]
        look["requestBody"]["required"] = True
    health = spec.setdefault("paths", {}).setdefault("/healthz", {})
    health["get"] = {
        "description": "BentoML's liveness probe (POST /healthz also gives the served model versions)",
        "responses": {"200": {"description": "alive", "content": {"text/plain": {"schema": {"type": "string"}}}}},
        "security": [],
    }
    return spec


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` for pydantic's `anyOf [X, {"type": "null"}]` and for fields defaulting to null
    (BentoML drops the null branch of a top-level request field but keeps its `default: null`)."""
    if isinstance(node, list):
        return [_nullable(x) for x in node]
    if not isinstance(node, dict):
        return node
    node = {k: _nullable(v) for k, v in node.items()}
    branches = node.get("anyOf")
    if isinstance(branches, list) and {"type": "null"} in branches:
        rest = [b for b in branches if b != {"type": "null"}]
        node.pop("anyOf")
        if len(rest) == 1 and "$ref" not in rest[0]:
            node = {**rest[0], **node}
        else:
            node["anyOf"] = rest
        node["nullable"] = True
    elif "default" in node and node["default"] is None and ("type" in node or "$ref" in node or "anyOf" in node):
        node["nullable"] = True
    return node


class Contract:
    """Serves the rewritten /docs.json and answers 405 with the full `Allow` for a method a route does not take."""

    def __init__(self, app: Any, routes: dict[str, str | None], max_body: int) -> None:
        self.app, self.routes, self.max_body = app, routes, max_body
        self._spec: bytes | None = None

    def allowed(self, path: str) -> str:
        return "GET, HEAD, POST" if path == "/healthz" else "POST"

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        if path in self.routes and method not in self.allowed(path).split(", "):
            body = json.dumps({"error": f"method {method} not allowed: use {self.allowed(path)}"}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"allow", self.allowed(path).encode()),
            ]
            await send({"type": "http.response.start", "status": 405, "headers": headers})
            return await send({"type": "http.response.body", "body": body})
        if path == "/docs.json" and method in ("GET", "HEAD"):
            return await self._docs(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _docs(self, scope: dict, receive: Any, send: Any) -> None:
        if self._spec is None:
            start: dict = {}
            chunks: list[bytes] = []

            async def keep(message: dict) -> None:
                if message["type"] == "http.response.start":
                    start.update(message)
                else:
                    chunks.append(message.get("body", b""))

            await self.app({**scope, "method": "GET"}, receive, keep)
            if start.get("status") != 200:
                return await self.app(scope, receive, send)
            spec = openapi(json.loads(b"".join(chunks)), self.routes, self.max_body)
            self._spec = json.dumps(spec).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self._spec)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else self._spec})
