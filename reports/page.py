"""What every page the lab writes shares (run reports, sweep reports): the stylesheet, the
page shell and the table builder.  The stylesheet is inline, so each page stays one
self-contained file."""

from __future__ import annotations

import html
from collections.abc import Collection, Sequence

__all__ = ["PAGE_CSS", "page", "table"]

PAGE_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2733;
background:#f3f5f8;line-height:1.45}
main{max-width:1180px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:1.6rem;margin:.5rem 0 .1rem}
h2{font-size:1.15rem;margin:0 0 .6rem}
h3{font-size:1rem;margin:.9rem 0 .3rem}
section{background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:14px 18px;
margin:14px 0}
.banner{padding:14px 18px;border-radius:8px;color:#fff;font-size:1.15rem;margin:12px 0}
.pass{background:#23804a}.fail{background:#b83227}.neutral{background:#4a5a6e}
.warn{background:#a35f00}
.facts{margin:.2rem 0 .4rem;color:#3b4756}
ul.glance{background:#fff;border:1px solid #dde2e8;border-left:4px solid #1f5fa8;
border-radius:8px;margin:10px 0;padding:10px 18px 10px 34px}
ul.glance li{margin:.2rem 0}
nav{font-size:.85rem;margin:8px 0}
nav a{display:inline-block;margin:2px 4px 2px 0;padding:2px 8px;border:1px solid #cfd6de;
border-radius:12px;color:#1f5fa8;text-decoration:none;background:#fff}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:.85rem;margin:.4rem 0;max-width:100%}
th,td{border:1px solid #dde2e8;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#eef1f5;font-weight:600}
td.l,th.l{text-align:left}
.ci{color:#5b6878;font-size:.8rem;white-space:nowrap}
td .ci{display:block}
.nums{color:#5b6878;font-size:.75rem;margin-top:2px}
.ok{color:#23804a;font-weight:600}.bad{color:#b83227;font-weight:700}
.tag{color:#fff;border-radius:4px;padding:0 6px;font-size:.8rem}
figure{margin:4px 0 8px}
figcaption{color:#5b6878;font-size:.8rem;max-width:900px}
svg.figure{display:block;box-sizing:content-box;max-width:calc(100% - 2px);height:auto;
border:1px solid #e3e7ec;border-radius:4px;
background:#fff}
.decision{background:#fff;border:1px solid #dde2e8;border-left:8px solid #4a5a6e;border-radius:8px;
padding:10px 18px;margin:12px 0}
.tone-pass{border-left-color:#23804a}.tone-fail{border-left-color:#b83227}
.decision .verdict{font-size:1.3rem;font-weight:700;margin:.1rem 0 .3rem}
.decision p{margin:.3rem 0}
.g{display:inline-block;border-radius:4px;padding:0 5px;font-size:.8rem;font-weight:600}
.g-pass{background:#d7f0df;color:#1b5e36}.g-fail{background:#f8d9d5;color:#8a231b}
.g-inconclusive{background:#e6e9ee;color:#3b4756}.g-skipped{background:#f3f5f8;color:#5b6878}
.row{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.grow{flex:1 1 360px;min-width:0}
pre{background:#f7f8fa;border:1px solid #dde2e8;padding:8px;overflow:auto;font-size:.8rem}
code{background:#f1f3f6;padding:0 3px;border-radius:3px}
details summary{cursor:pointer;color:#1f5fa8}
.muted{color:#5b6878;font-size:.85rem;margin:.3rem 0}
footer{color:#5b6878;font-size:.8rem;margin-top:18px}
"""


def table(
    head: Sequence[str], rows: Sequence[Sequence[str]], left: int | Collection[int] = 1
) -> str:
    """A table whose cells are HTML already: columns in ``left`` (indices, or the first
    ``left``) hold left-aligned text, the rest right-aligned numbers."""
    text_columns = set(range(left)) if isinstance(left, int) else set(left)

    def cell(tag: str, i: int, content: str) -> str:
        cls = ' class="l"' if i in text_columns else ""
        return f"<{tag}{cls}>{content}</{tag}>"

    header = "".join(cell("th", i, h) for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>" for row in rows
    )
    return (
        f'<div class="scroll"><table><thead><tr>{header}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def page(
    *,
    title: str,
    heading: str,
    description: str,
    top: Sequence[str],
    sections: Sequence[tuple[str, str, str]],
    footer: str,
) -> str:
    """One HTML page: ``heading`` and ``description`` (text, escaped here), the ``top`` blocks
    (HTML), a navigation bar and one ``<section>`` per ``(anchor, title, body HTML)``."""
    nav = "".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t, _ in sections)
    body = "".join(
        f'<section id="{a}"><h2>{html.escape(t)}</h2>{b}</section>' for a, t, b in sections
    )
    blocks = "\n".join(top)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{PAGE_CSS}</style></head>
<body><main>
<h1>{html.escape(heading)}</h1>
<p class="muted">{html.escape(description)}</p>
{blocks}
<nav>{nav}</nav>
{body}
{footer}
</main></body></html>
"""
