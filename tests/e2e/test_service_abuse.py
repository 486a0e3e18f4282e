"""Issue 14, written as the hostile requests that showed each finding, against the real `bentoml serve`.

Unknown paths must not grow `/metrics` (1), a body that trickles in is cut with 408 (5), a client-made field
name holding a newline cannot forge a log line (14), and a 403 names the missing scope, not the key (15).
"""

from __future__ import annotations

import re
import socket
import time
import uuid

import requests

from tests.e2e.test_service_http import svc  # noqa: F401  (the module's own server, same set-up)

FORGED = "2026-12-08T00:00:00+0000 [INFO] [entry_service:tailor:1] FORGED"


def test_unknown_paths_do_not_grow_metrics(svc) -> None:  # noqa: F811
    url = svc["client"].url
    with requests.Session() as http:
        http.post(url + "/noop", data="{}", headers={"Content-Type": "application/json"}, timeout=30)
        before = len(http.get(url + "/metrics", timeout=60).content)
        for _ in range(600):
            assert http.get(f"{url}/nope-{uuid.uuid4()}", timeout=30).status_code == 404
        assert http.get(url + "/docs.json", timeout=30).status_code == 200  # real routes still route
        body = http.get(url + "/metrics", timeout=60).text
    assert "nope-" not in body
    assert len(body.encode()) - before < 20_000, (before, len(body))  # was ~2.5 KB per unknown path
    assert 'endpoint="/noop"' in body  # known routes keep their own label


def test_a_body_that_trickles_in_is_cut_with_408(svc) -> None:  # noqa: F811
    c = svc["client"]
    port = int(c.url.rsplit(":", 1)[1])
    head = (
        "POST /persona HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {c.keys['read']}\r\nContent-Length: 1000\r\n\r\n"
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head.encode())
        sock.settimeout(1.0)
        answer = b""
        for _ in range(40):  # one byte a second for up to 40 s, as the slow clients did
            try:
                sock.sendall(b" ")
            except OSError:
                break
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            if not chunk:
                break
            answer += chunk
            if b"\r\n\r\n" in answer:
                break
    took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert took < 20, took
    assert c.post("/persona", {"member_id": svc["raw_ids"][3]}).status_code == 200  # others still served


def test_a_field_name_with_a_newline_cannot_forge_a_log_line(svc) -> None:  # noqa: F811
    c = svc["client"]
    r = c.post("/persona", {"member_id": "1", f"x\n{FORGED}": 1})
    assert r.status_code in (400, 422), r.text
    requests.get(c.url + "/x%0A" + FORGED.replace(" ", "%20"), timeout=30)
    time.sleep(1.0)  # the server's log is written by its own process
    log = svc["log"].read_text(errors="replace")
    assert "FORGED" in log  # the request did reach the log, escaped
    assert not [line for line in log.splitlines() if line.startswith("2026-12-08T00:00:00")]
    assert not re.search(r"^\S*\s*FORGED", log, re.M)


def test_403_names_the_scope_not_the_key(svc) -> None:  # noqa: F811
    r = svc["client"].post("/reload", {}, key="read")
    assert r.status_code == 403
    assert "platform-read" not in r.text and "admin" in r.json()["detail"], r.text
