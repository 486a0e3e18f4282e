"""Log lines that a client cannot forge: control characters in every logged message are escaped.

Client-controlled strings reach the service's log through many doors (a JSON field name in a validation
warning, a request path in BentoML's access log, an exception's text), so escaping is done once, where
every record is made: `install()` wraps the process's log-record factory so that each record's formatted
message has newlines, carriage returns and the other control characters (and Unicode line separators)
written as visible escapes (`\\n`, `\\x1b`, `\\u2028`). Tracebacks are formatted later from `exc_info`
and keep their lines.
"""

from __future__ import annotations

import logging
import re
from typing import Any

_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def escape(text: str) -> str:
    """`text` with control characters (tab excepted) and line separators as visible escapes."""
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), m.group().encode("unicode_escape").decode()), text)


def _safe_record(base: Any) -> Any:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging's own error report
            return record
        if _CONTROL.search(message):
            record.msg, record.args = escape(message), None
        return record

    make.tailor_safe = True  # type: ignore[attr-defined]
    return make


def install() -> None:
    """Escape control characters in every log record made in this process from now on (idempotent)."""
    base = logging.getLogRecordFactory()
    if not getattr(base, "tailor_safe", False):
        logging.setLogRecordFactory(_safe_record(base))
