"""Jinja2 rendering with autoescaping on: every value is HTML-escaped unless it is a chart we built."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

TEMPLATES = Path(__file__).parent / "templates"


@cache
def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def safe_svg(svg: str | None) -> Markup | None:
    """Mark one of our own SVG strings (labels escaped inside `svg.py`) as safe to embed."""
    return Markup(svg) if svg else None


def render(template: str, **context: object) -> str:
    """Render a template with the shared inline CSS."""
    css = Markup((TEMPLATES / "base.css").read_text())
    return _env().get_template(template).render(css=css, **context)
