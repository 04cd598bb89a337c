"""Matplotlib figures as inline SVG for the lab's one-file pages.

Text stays text (``svg.fonttype = "none"``), so figures scale and their words can be
searched and selected.  Sizes are in CSS pixels: a figure is drawn on a canvas of
``width_px`` × ``height_px`` at 72 dpi and its SVG says ``width="{width_px}"``, so one SVG
user unit is one pixel and a font of 11 units is 11 px at 100 % zoom.  Every font here is
at least :data:`MIN_TEXT_PX`, and figures are at most :data:`FULL_WIDTH_PX` wide, which fits
the page's content column on a 1280 px screen (``reports.page``).

Legends go outside the plotting area (right of it, or above it), never over the data; each
plotting area carries the id ``{figure}-plot-area-{i}`` and each legend
``{figure}-legend-{i}``, so a browser test can measure their boxes.

Figures are built on ``matplotlib.figure.Figure`` directly, never through pyplot, so rendering
a report inside a notebook does not change the notebook's backend or show stray figures.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib loads with the first figure drawn (stored ones draw nothing)
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "FULL_WIDTH_PX",
    "HALF_WIDTH_PX",
    "MIN_TEXT_PX",
    "figure_html",
    "legend_outside",
    "literal",
    "new_figure",
    "style",
    "to_svg",
]

#: Widest figure: the page's content column is about 1,090 px wide at 1280 px.
FULL_WIDTH_PX = 1060
#: Two of these sit side by side in a row.
HALF_WIDTH_PX = 520
#: Smallest text in any figure, in CSS pixels at 100 % zoom.
MIN_TEXT_PX = 11

_RC: dict[str, Any] = {
    "svg.fonttype": "none",
    # Fixed so that clip-path and marker ids (hashes) are the same on every run.
    "svg.hashsalt": "rollout-lab",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial"],
    "font.size": MIN_TEXT_PX,
    "axes.titlesize": 13,
    "axes.labelsize": 12,
    "xtick.labelsize": MIN_TEXT_PX,
    "ytick.labelsize": MIN_TEXT_PX,
    "legend.fontsize": MIN_TEXT_PX,
    "legend.title_fontsize": MIN_TEXT_PX,
    "figure.titlesize": 13,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


@contextmanager
def style() -> Iterator[None]:
    """The figures' rcParams, for building and saving a figure (restored afterwards)."""
    import matplotlib

    with matplotlib.rc_context(_RC):  # type: ignore[arg-type]
        yield


def literal(value: object) -> str:
    """A label matplotlib shows literally: ``$`` would otherwise start mathtext."""
    return str(value).replace("$", r"\$")


def new_figure(
    width_px: int,
    height_px: int,
    *,
    columns: int = 1,
    rows: int = 1,
    width_ratios: Sequence[float] | None = None,
    sharey: bool = False,
) -> tuple[Figure, list[Axes]]:
    """A constrained-layout figure of exactly ``width_px`` × ``height_px`` and its axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_px / 72.0, height_px / 72.0), dpi=72, layout="constrained")
    grid = fig.subplots(
        rows, columns, squeeze=False, width_ratios=width_ratios, sharey=sharey
    ).ravel()
    axes = list(grid)
    for i, ax in enumerate(axes):
        ax.patch.set_gid(f"plot-area-{i}")
    return fig, axes


def legend_outside(
    fig: Figure, ax: Axes, *, where: str = "right", columns: int = 1, index: int = 0
) -> None:
    """The legend of ``ax``'s labelled artists outside every plotting area: ``right`` of the
    axes (constrained layout makes room) or ``top`` (above the plots, under the title)."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if where == "right":
        legend = fig.legend(handles, labels, loc="outside right upper", frameon=False)
    else:
        legend = fig.legend(
            handles, labels, loc="outside upper center", ncols=columns, frameon=False
        )
    legend.set_gid(f"legend-{index}")


def to_svg(fig: Figure, name: str, label: str) -> str:
    """``fig`` as inline ``<svg>`` markup sized in CSS pixels.

    ``name`` (letters, digits, ``-``) prefixes every id of the figure so that several figures
    on one page never share one; ``label`` is the figure's accessible name (escaped here).
    """
    if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        raise ValueError(f"figure name must be lowercase letters, digits and '-', got {name!r}")
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)
    width, height = fig.get_size_inches() * 72.0
    text = re.sub(
        r'<svg([^>]*?) width="[^"]*" height="[^"]*"',
        rf'<svg\1 width="{width:.0f}" height="{height:.0f}"',
        text,
        count=1,
    )
    text = re.sub(r'\bid="([^"]+)"', rf'id="{name}-\1"', text)
    text = re.sub(r"url\(#([^)]+)\)", rf"url(#{name}-\1)", text)
    # Inline in HTML the namespaces are implied; SVG 2's plain href replaces xlink:href.
    text = re.sub(r'xlink:href="#([^"]+)"', rf'href="#{name}-\1"', text)
    text = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text)
    title = f"<title>{html.escape(label, quote=True)}</title>"
    text = re.sub(r"(<svg[^>]*>)", lambda m: m.group(1) + title, text, count=1)
    return text.replace("<svg", f'<svg class="figure" role="img" data-figure="{name}"', 1)


def figure_html(svg: str, caption: str = "") -> str:
    """A ``<figure>`` holding inline SVG markup; ``caption`` is HTML already."""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f"<figure>{svg}{cap}</figure>"
