"""The BentoML service: `bentoml serve serving.service:Tailor` (one worker holds the in-process state).

Endpoints take raw member ids and answer with pseudonyms only. Keys, scopes and the body limit are checked
by `serving.http_guard.Guard` before a request is parsed; every read of a member's data, every event
write, erasure and reload is appended to the audit log. Heavy imports (torch, faiss, mlflow) happen in
`Tailor.__init__`, i.e. once in the worker, never at module import in BentoML's parent process.
"""

from __future__ import annotations

import logging
import os
import re

import anyio
import bentoml
from starlette.responses import JSONResponse

from datasets.layout import Layout
from serving import schemas as s
from serving.audit import log as audit_log
from serving.contract import Contract
from serving.http_guard import BODY_TIMEOUT_S, MAX_BODY, PRINCIPAL, Guard
from serving.logsafe import escape
from serving.logsafe import install as escape_logs
from serving.traffic import patch_metrics_labels, patch_timeout_middleware

ROUTES: dict[str, str | None] = {
    "/persona": "read",
    "/rank_offers": "read",
    "/recommend": "read",
    "/lookalike": "read",
    "/events": "events",
    "/report": "report",
    "/erase": "admin",
    "/reload": "admin",
    "/audit": "admin",
    "/healthz": None,
    "/noop": None,
}


class _QuietInvalidInput(logging.Filter):
    """Bad client input is a one-line warning, not an ERROR with a traceback (inputs are hidden anyway)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and type(record.exc_info[1]).__name__ == "ValidationError":
            errors = record.exc_info[1].errors(include_input=False)  # type: ignore[union-attr]
            fields = escape(", ".join(".".join(map(str, e["loc"])) or "body" for e in errors))  # client's names
            record.msg = f"{record.msg} (invalid request: {fields})"
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _dataset() -> str | None:
    return os.environ.get("TAILOR_DATASET") or None


def _who(ctx: bentoml.Context) -> str:
    principal = ctx.request.scope.get(PRINCIPAL)
    return principal.name if principal else "anonymous"


def _fail(ctx: bentoml.Context, status: int, message: str, raw: list[str] | tuple[str, ...] = ()) -> JSONResponse:
    """A JSON error whose message never carries the raw ids of the request."""
    message = _redact(message, list(raw))
    field = re.match(r"^\s*'?([a-z_][a-z0-9_.]*)'?\s*:", message)
    ctx.response.status_code = status
    body = {"error": message, **({"field": field.group(1)} if field else {})}
    return JSONResponse(body, status_code=status)


@bentoml.service(name="tailor", workers=1, traffic={"timeout": 120})
class Tailor:
    """Personas, recommendations, ranked offers, lookalikes, event ingestion, reports, erasure."""

    def __init__(self) -> None:
        from serving.state import ServingState  # torch/faiss/mlflow: imported here, in the worker only

        self.state = ServingState.load(Layout.from_env(), dataset=_dataset())
        logging.getLogger("bentoml._internal.server.http_app").addFilter(_QuietInvalidInput())
        self.log = audit_log()
        self.log.record("service", "start", None, versions=self.state.versions())

    @bentoml.api(input_spec=s.PersonaRequest, output_spec=s.PersonaResponse)
    def persona(self, member_id: str, ctx: bentoml.Context) -> s.PersonaResponse | JSONResponse:
        """The member's persona: vector, segment, lifecycle, tags, tier, points, churn/purchase scores."""
        state = self.state
        try:
            out = state.persona(member_id)
        except ValueError as exc:
            return _fail(ctx, 400, str(exc), [member_id])
        self.log.record(_who(ctx), "persona", out["member"], cold_start=out["cold_start"])
        return s.PersonaResponse.model_validate(out)

    @bentoml.api(input_spec=s.RecommendRequest, output_spec=s.RecommendResponse)
    def recommend(
        self, member_id: str, k: int, exclude_bought: bool, ctx: bentoml.Context
    ) -> s.RecommendResponse | JSONResponse:
        """Top-k items for the member (cold start: segment and popularity)."""
        state = self.state
        try:
            out = state.recommend(member_id, k=k, exclude_bought=exclude_bought)
        except ValueError as exc:
            return _fail(ctx, 400, str(exc), [member_id])
        self.log.record(_who(ctx), "recommend", out["member"], k=k, cold_start=out["cold_start"])
        return s.RecommendResponse.model_validate(out)

    @bentoml.api(input_spec=s.RankOffersRequest, output_spec=s.RankOffersResponse)
    def rank_offers(
        self, member_id: str, context: s.Context, k: int, record: bool, ctx: bentoml.Context
    ) -> s.RankOffersResponse | JSONResponse:
        """Eligible offers ranked by expected incremental value, with reason codes (issued at the server's clock;
        `record: false` ranks without issuing, at `context.time` if given)."""
        state = self.state
        try:
            out = state.rank_offers(member_id, k=k, channel=context.channel, at=context.time, record=record)
        except ValueError as exc:
            return _fail(ctx, 400, str(exc), [member_id])
        issued = out.pop("issued")
        committed = round(sum(i["cost"] for i in issued), 6)
        detail = {"k": k, "channel": context.channel, "record": record, "issued": issued, "committed": committed}
        self.log.record(_who(ctx), "rank_offers", out["member"], **detail)
        return s.RankOffersResponse.model_validate(out)

    @bentoml.api(input_spec=s.LookalikeRequest, output_spec=s.LookalikeResponse)
    def lookalike(
        self, seeds: list[str] | None, segment: str | None, k: int, ctx: bentoml.Context
    ) -> s.LookalikeResponse | JSONResponse:
        """Members most like the seed members (or like a segment)."""
        if not seeds and not segment:
            return _fail(ctx, 422, "seeds: give seed member ids or a segment")
        state = self.state
        try:
            out = state.lookalike(seeds=seeds, segment=segment, k=k)
        except ValueError as exc:
            return _fail(ctx, 400, str(exc), seeds or [])
        members = [state.pseudonym(m) for m in dict.fromkeys(seeds or [])] or [None]
        self.log.record_many(_who(ctx), "lookalike", members, k=k, segment=segment, returned=len(out["members"]))
        return s.LookalikeResponse.model_validate(out)

    @bentoml.api(input_spec=s.EventsRequest, output_spec=s.EventsResponse)
    def events(self, events: list[dict], ctx: bentoml.Context) -> s.EventsResponse | JSONResponse:
        """Ingest canonical events; the member's next answers reflect them. Each event is checked on its own: the
        valid ones are accepted and every other one is listed in `rejected` (index, field, reason)."""
        state = self.state
        rows, where, invalid = _parse_events(events)
        raw = [r["member_id"] for r in rows]
        try:
            out = state.add_events(rows) if rows else {"accepted": 0, "rejected": []}
        except ValueError as exc:
            return _fail(ctx, 400, str(exc), raw)
        for rej in out["rejected"]:
            rej["index"] = where[rej["index"]]
        out["rejected"] = sorted(invalid + out["rejected"], key=lambda r: r["index"])
        for rej in out.get("rejected", []):
            rej["reason"] = _redact(str(rej.get("reason", "")), raw)
        members = [state.pseudonym(m) for m in dict.fromkeys(raw)]
        self.log.record_many(_who(ctx), "events", members, accepted=out["accepted"], rejected=len(out["rejected"]))
        return s.EventsResponse.model_validate(out)

    @bentoml.api(input_spec=s.ReportRequest)
    def report(self, member_id: str, locale: str, ctx: bentoml.Context) -> str:
        """The member's consumption report (an HTML page; errors are JSON): the member's own key or an admin key."""
        principal = ctx.request.scope.get(PRINCIPAL)
        if principal is None or not principal.may_read_member(member_id):
            return _fail(ctx, 403, "member_id: this key may read only its own member's report")
        try:
            from serving.report import member_report_html
        except ImportError:
            return _fail(ctx, 501, "report: the member report is not available in this build")
        state = self.state
        if state.is_erased(member_id):  # the prepared data may still hold them until the next prepare
            return _fail(ctx, 404, "member_id: this member's data was erased", [member_id])
        try:
            html = member_report_html(state, member_id, locale, dataset=state.versions().get("dataset"))
        except ValueError as exc:
            return _fail(ctx, 400, str(exc), [member_id])
        self.log.record(_who(ctx), "report", state.pseudonym(member_id), locale=locale)
        ctx.response.metadata["content-type"] = "text/html; charset=utf-8"
        return html

    @bentoml.api(input_spec=s.EraseRequest, output_spec=s.EraseResponse)
    def erase(self, member_id: str, ctx: bentoml.Context) -> s.EraseResponse | JSONResponse:
        """Erase the member's persona, index entries, history and future training data."""
        state = self.state
        try:
            out = state.erase(member_id)
        except ValueError as exc:
            return _fail(ctx, 400, str(exc), [member_id])
        self.log.record(_who(ctx), "erase", out["member"], removed=out.get("removed", {}))
        return s.EraseResponse.model_validate(out)

    @bentoml.api(input_spec=s.Empty, output_spec=s.VersionsResponse)
    async def reload(self, ctx: bentoml.Context) -> s.VersionsResponse | JSONResponse:
        """Load the current champions and indices, then swap them in; requests keep answering meanwhile.

        `ServingState.reload` builds the new snapshot off to the side and swaps the reference under its lock, so
        ingested events and erasures survive; it runs outside the request thread so other endpoints go on.
        """
        state, who = self.state, _who(ctx)
        old = state.versions()
        versions = await anyio.to_thread.run_sync(state.reload)
        await anyio.to_thread.run_sync(lambda: self.log.record(who, "reload", None, before=old, after=versions))
        return s.VersionsResponse(versions=versions)

    @bentoml.api(input_spec=s.AuditRequest, output_spec=s.AuditResponse)
    def audit(self, limit: int, member_id: str | None, ctx: bentoml.Context) -> s.AuditResponse | JSONResponse:
        """The newest audit rows (admin), optionally of one member."""
        member = self.state.pseudonym(member_id) if member_id else None
        return s.AuditResponse.model_validate({"rows": self.log.read(limit, member)})

    @bentoml.api(input_spec=s.Empty, output_spec=s.VersionsResponse)
    def healthz(self) -> s.VersionsResponse | JSONResponse:
        """Liveness with the served model versions (POST; GET /healthz is BentoML's own probe)."""
        return s.VersionsResponse(versions=self.state.versions())

    @bentoml.api(input_spec=s.Empty, output_spec=s.Ok)
    async def noop(self) -> s.Ok:
        """Does nothing: the framework's floor for load benchmarks."""
        return s.Ok(ok=True)


def _parse_events(events: list[dict]) -> tuple[list[dict], list[int], list[dict]]:
    """(valid rows, their indices in the batch, one rejection per invalid event) from the request's events."""
    from pydantic import ValidationError

    rows, where, invalid = [], [], []
    for i, event in enumerate(events):
        try:
            rows.append(s.Event.model_validate(event).model_dump())
            where.append(i)
        except ValidationError as exc:
            err = exc.errors(include_input=False, include_url=False)[0]
            field = str(err["loc"][0]) if err["loc"] else "event"
            invalid.append({"index": i, "field": field, "reason": err["msg"]})
    return rows, where, invalid


def _redact(message: str, raw: list[str]) -> str:
    for r in sorted({x for x in raw if x}, key=len, reverse=True):
        message = message.replace(r, "<member_id>")
    return message


escape_logs()  # client-controlled text (paths, field names) never starts a log line of its own
patch_timeout_middleware()
patch_metrics_labels(ROUTES)  # a client's made-up path is not a metrics label
Tailor.add_asgi_middleware(Contract, routes=ROUTES, max_body=int(os.environ.get("TAILOR_MAX_BODY", MAX_BODY)))
Tailor.add_asgi_middleware(
    Guard,
    routes=ROUTES,
    max_body=int(os.environ.get("TAILOR_MAX_BODY", MAX_BODY)),
    body_timeout_s=float(os.environ.get("TAILOR_BODY_TIMEOUT_S", BODY_TIMEOUT_S)),
)
