"""Small inline SVG charts (no scripts, no network): bars, horizontal bars, lines, histograms.

Every chart has a <title>, role="img" and an aria-label, scales to its container width
(viewBox + width 100%), and escapes every label.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

PALETTE = ("#2f6fdb", "#e07b39", "#3aa67a", "#a05cc9", "#d94a64", "#6f7b8a")
_FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _open(width: int, height: int, title: str) -> str:
    t = escape(title)
    return (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMidYMid meet" role="img" aria-label="{t}"><title>{t}</title>'
    )


def _clip(text: str, n: int = 22) -> str:
    """A label shortened to fit its column (the full text stays in the bar's tooltip)."""
    return text if len(text) <= n else text[: n - 1] + "…"


def _nice_max(values: Sequence[float]) -> float:
    top = max([float(v) for v in values] + [0.0])
    return top if top > 0 else 1.0


def bars(
    labels: Sequence[str],
    values: Sequence[float],
    title: str,
    fmt: Callable[[float], str] = lambda v: f"{v:,.0f}",
    width: int = 360,
    height: int = 180,
    color: str = PALETTE[0],
) -> str:
    """Vertical bars with the value of each bar in its tooltip and the largest value labelled."""
    n, pad_b, pad_t, pad_x = max(len(values), 1), 28, 18, 12
    top = _nice_max(values)
    slot = (width - 2 * pad_x) / n
    out = [_open(width, height, title)]
    out.append(f'<line x1="0" y1="{height - pad_b}" x2="{width}" y2="{height - pad_b}" stroke="#bbb"/>')
    big = max(range(len(values)), key=lambda i: values[i]) if values else -1
    every = max(1, -(-n // 12))
    for i, (lab, v) in enumerate(zip(labels, values, strict=True)):
        h = (height - pad_b - pad_t) * float(v) / top
        x, y = pad_x + i * slot + slot * 0.15, height - pad_b - h
        tip = escape(f"{lab}: {fmt(v)}")
        out.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" fill="{color}" rx="2">'
            f"<title>{tip}</title></rect>"
        )
        if i % every == 0:
            out.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{height - pad_b + 14}" text-anchor="middle" {_FONT} '
                f'fill="#444">{escape(str(lab))}</text>'
            )
        if i == big and v > 0:
            out.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{y - 4:.1f}" text-anchor="middle" {_FONT} '
                f'fill="#222">{escape(fmt(v))}</text>'
            )
    out.append("</svg>")
    return "".join(out)


def hbars(
    labels: Sequence[str],
    values: Sequence[float],
    title: str,
    fmt: Callable[[float], str] = lambda v: f"{v:,.0f}",
    width: int = 360,
    row: int = 24,
    colors: Sequence[str] = PALETTE,
) -> str:
    """Horizontal bars, one labelled row each (label left, value right): readable on a phone."""
    n = max(len(values), 1)
    height = n * row + 8
    top = _nice_max(values)
    lab_w, val_w = width * 0.40, width * 0.22
    out = [_open(width, height, title)]
    for i, (lab, v) in enumerate(zip(labels, values, strict=True)):
        y = 4 + i * row
        w = (width - lab_w - val_w) * float(v) / top
        c = colors[i % len(colors)]
        tip = escape(f"{lab}: {fmt(v)}")
        out.append(
            f'<text x="{lab_w - 6:.1f}" y="{y + row * 0.65:.1f}" text-anchor="end" {_FONT} fill="#333">'
            f"{escape(_clip(str(lab)))}</text>"
        )
        out.append(
            f'<rect x="{lab_w:.1f}" y="{y + 3}" width="{max(w, 1):.1f}" height="{row - 8}" fill="{c}" rx="2">'
            f"<title>{tip}</title></rect>"
        )
        out.append(
            f'<text x="{lab_w + w + 4:.1f}" y="{y + row * 0.65:.1f}" {_FONT} fill="#222">{escape(fmt(v))}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def lines(
    labels: Sequence[str],
    series: dict[str, Sequence[float]],
    title: str,
    fmt: Callable[[float], str] = lambda v: f"{v:,.2f}",
    width: int = 360,
    height: int = 180,
) -> str:
    """One polyline per named series over shared x labels, with a legend."""
    n = max(len(labels), 1)
    pad_l, pad_b, pad_t = 8, 28, 22
    top = _nice_max([v for s in series.values() for v in s])
    step = (width - 2 * pad_l) / max(n - 1, 1)
    out = [_open(width, height, title)]
    out.append(f'<line x1="0" y1="{height - pad_b}" x2="{width}" y2="{height - pad_b}" stroke="#bbb"/>')
    for j, (name, vals) in enumerate(series.items()):
        c = PALETTE[j % len(PALETTE)]
        pts = [
            (pad_l + i * step, height - pad_b - (height - pad_b - pad_t) * float(v) / top) for i, v in enumerate(vals)
        ]
        out.append(
            f'<polyline fill="none" stroke="{c}" stroke-width="2" points="'
            + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            + '"/>'
        )
        for (x, y), lab, v in zip(pts, labels, vals, strict=False):
            out.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{c}"><title>'
                f"{escape(f'{name}, {lab}: {fmt(v)}')}</title></circle>"
            )
        out.append(
            f'<rect x="{pad_l + j * 110}" y="4" width="10" height="10" fill="{c}"/>'
            f'<text x="{pad_l + j * 110 + 14}" y="13" {_FONT} fill="#333">{escape(name)}</text>'
        )
    every = max(1, -(-n // 8))
    for i, lab in enumerate(labels):
        if i % every == 0:
            anchor = "start" if i == 0 else "middle"
            out.append(
                f'<text x="{pad_l + i * step:.1f}" y="{height - pad_b + 14}" text-anchor="{anchor}" {_FONT} '
                f'fill="#444">{escape(str(lab))}</text>'
            )
    out.append("</svg>")
    return "".join(out)


def histogram(edges: Sequence[float], counts: Sequence[float], title: str, width: int = 360, height: int = 140) -> str:
    """A histogram from bin edges (len(counts) + 1) and counts; each bar labelled by its lower edge."""
    labels = [f"{edges[i]:.2g}" for i in range(len(counts))]  # each bin by its lower edge
    svg = bars(labels, counts, title, width=width, height=height, color=PALETTE[4])
    return svg
