"""Reports opened in Chromium at 1280 px, measured through the browser's own layout.

For the report of a small quick start, of a small release train (several versions, a
rollback, a settled rollout with an idle tail), of a staged serving path with single flight,
SLOs and resources, of an autoscaler behind a flash crowd (SLO alerts, the replica trace), of
a blue-green switch on a node too small (OOM kills) and of a tiny sweep:

* every section is screenshotted at 1280 px (kept in ``$ROLLOUT_LAB_SCREENSHOTS`` when set,
  else a temporary folder) and each screenshot holds a real picture;
* nothing scrolls sideways: the page fits 1280 px and no table needs its scroll bar;
* in every figure, legends lie outside every plotting area and inside the figure, no two
  texts overlap, and every text is at least 11 px tall at 100 % zoom;
* the page logs no console message, holds no script, and has every section.

Drives Debian's Chromium (``$CHROMIUM``, else ``chromium`` or ``chromium-browser`` on the
PATH) through Playwright with ``executable_path``: Playwright never downloads a browser
here.  Skipped, with the reason, where no Chromium is installed (``make test`` installs it
when it can: ``apt-get install chromium``).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from reports.sections import SECTIONS
from reports.svg import MIN_TEXT_PX
from reports.sweep_report import SECTIONS as SWEEP_SECTIONS
from reports.topology_sections import report_sections
from rollout_lab.cli import main

ROOT = Path(__file__).resolve().parents[2]
SMALL = [
    "--set",
    "traffic.users=2000",
    "--set",
    "traffic.items=400",
    "--set",
    "metrics.noise_floor=false",
]
WIDTH = 1280


def _chromium() -> str | None:
    configured = os.environ.get("CHROMIUM")
    if configured:
        return shutil.which(configured)
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium not installed (apt-get install chromium, or set $CHROMIUM)",
)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")


@dataclass(frozen=True)
class Page:
    path: Path
    sections: tuple[tuple[str, str], ...]


def _run(out: Path, scenario: str, *extra: str) -> Path:
    args = ["run", str(ROOT / "scenarios" / scenario), "--out", str(out), "--force", "--quiet"]
    assert main([*args, *SMALL, *extra]) in (0, 1)
    return out / "report.html"


def _topology_page(report: Path) -> Page:
    """A report whose sections include the serving topology's (those its run uses)."""
    summary = json.loads((report.parent / "summary.json").read_text(encoding="utf-8"))
    sections = tuple(report_sections(summary))
    assert len(sections) > len(SECTIONS)
    return Page(report, sections)


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Page]:
    base = tmp_path_factory.mktemp("browser")
    quick = _run(
        base / "quickstart",
        "quickstart.toml",
        "--set",
        "traffic.duration=20m",
        "--set",
        "traffic.arrivals.mean_rate_per_s=15",
        "--set",
        "rollout.analysis.interval=2m",
    )
    train = _run(
        base / "train",
        "release_train.toml",
        "--set",
        "traffic.arrivals.mean_rate_per_s=15",
    )
    staged = _run(
        base / "staged",
        "slow_ranking_degrades.toml",
        "--set",
        "traffic.duration=15m",
        "--set",
        "cache.coalesce=true",
        "--set",
        'slos=[{name="fast", kind="latency", target=0.99, threshold_ms=50}, '
        '{name="by_model", kind="availability", target=0.999}]',
        "--set",
        "resources={overhead_mb=100}",
    )
    scaled = _run(base / "autoscaler", "autoscaler_flash_crowd.toml")
    oom = _run(base / "oom", "blue_green_oom.toml", "--set", "traffic.duration=12m")
    sweep_out = base / "sweep"
    code = main(
        [
            "sweep",
            str(ROOT / "scenarios" / "latency_regression_rollback.toml"),
            "--seeds",
            "2",
            "--workers",
            "1",
            "--grid",
            "rollout.analysis.failure_limit=1,2",
            "--set",
            "traffic.duration=15m",
            "--set",
            "traffic.users=1000",
            "--set",
            "traffic.items=300",
            "--out",
            str(sweep_out),
            "--quiet",
        ]
    )
    assert code == 0
    return {
        "quickstart": Page(quick, SECTIONS),
        "release_train": Page(train, SECTIONS),
        "staged": _topology_page(staged),
        "autoscaler": _topology_page(scaled),
        "oom": _topology_page(oom),
        "sweep": Page(sweep_out / "sweep.html", SWEEP_SECTIONS),
    }


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    kept = os.environ.get("ROLLOUT_LAB_SCREENSHOTS")
    folder = Path(kept) if kept else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _open(browser: Any, page: Page) -> tuple[Any, list[str]]:
    tab = browser.new_page(viewport={"width": WIDTH, "height": 900})
    messages: list[str] = []
    tab.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
    tab.on("pageerror", lambda error: messages.append(f"error: {error}"))
    tab.goto(page.path.as_uri())
    return tab, messages


# Every figure's legends, plotting areas and texts, with their boxes in CSS pixels, and the
# rendered size of each text (font size times the figure's scale on screen).
_FIGURES = """() => Array.from(document.querySelectorAll('svg.figure')).map(svg => {
  const box = e => { const r = e.getBoundingClientRect();
    return {x0: r.left, y0: r.top, x1: r.right, y1: r.bottom}; };
  const scale = svg.getScreenCTM() ? Math.sqrt(Math.abs(svg.getScreenCTM().a *
    svg.getScreenCTM().d)) : 1;
  return {
    name: svg.dataset.figure,
    svg: box(svg),
    legends: Array.from(svg.querySelectorAll('[id*="-legend-"]')).map(box),
    areas: Array.from(svg.querySelectorAll('[id*="-plot-area-"]')).map(box),
    texts: Array.from(svg.querySelectorAll('text')).map(t => ({
      text: t.textContent, box: box(t),
      px: parseFloat(getComputedStyle(t).fontSize) * scale})),
  };
})"""

_OVERFLOW = """() => ({
  page: document.documentElement.scrollWidth,
  viewport: window.innerWidth,
  scrolling: Array.from(document.querySelectorAll('.scroll'))
    .filter(e => e.scrollWidth > e.clientWidth + 1)
    .map(e => (e.closest('section') || {id: '?'}).id + ': ' + e.scrollWidth + ' > ' +
      e.clientWidth),
})"""


def _overlap(a: dict[str, float], b: dict[str, float], slack: float = 0.5) -> bool:
    return (
        min(a["x1"], b["x1"]) - max(a["x0"], b["x0"]) > slack
        and min(a["y1"], b["y1"]) - max(a["y0"], b["y0"]) > slack
    )


def _inside(inner: dict[str, float], outer: dict[str, float], slack: float = 1.0) -> bool:
    return (
        inner["x0"] >= outer["x0"] - slack
        and inner["y0"] >= outer["y0"] - slack
        and inner["x1"] <= outer["x1"] + slack
        and inner["y1"] <= outer["y1"] + slack
    )


@pytest.mark.parametrize(
    "which", ["quickstart", "release_train", "staged", "autoscaler", "oom", "sweep"]
)
def test_every_section_fits_1280_px_and_is_screenshotted(
    pages: dict[str, Page], browser: Any, shots: Path, which: str
) -> None:
    page = pages[which]
    tab, messages = _open(browser, page)
    sizes = tab.evaluate(_OVERFLOW)
    assert sizes["page"] <= sizes["viewport"] == WIDTH, sizes
    assert sizes["scrolling"] == [], f"tables wider than their section: {sizes['scrolling']}"
    for anchor, title in page.sections:
        section = tab.query_selector(f"section#{anchor}")
        assert section is not None, anchor
        assert section.query_selector("h2").inner_text() == title
        box = section.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, anchor
        shot = shots / f"{which}-{anchor}.png"
        section.screenshot(path=str(shot))
        with Image.open(io.BytesIO(shot.read_bytes())) as image:
            assert image.size[0] == round(box["width"]), anchor
            # A heading and text give many colours; a blank box gives one or two.
            assert len(image.convert("RGB").getcolors(maxcolors=100_000) or ()) > 8, anchor
    html = tab.content().lower()
    assert "<script" not in html
    assert messages == []
    tab.close()


@pytest.mark.parametrize(
    "which", ["quickstart", "release_train", "staged", "autoscaler", "oom", "sweep"]
)
def test_figures_keep_legends_off_the_data_and_text_readable(
    pages: dict[str, Page], browser: Any, which: str
) -> None:
    tab, _ = _open(browser, pages[which])
    figures = tab.evaluate(_FIGURES)
    tab.close()
    assert len(figures) >= (3 if which == "sweep" else 6)
    drawn = {figure["name"] for figure in figures}
    assert {"staged": {"slo-budget"}, "autoscaler": {"slo-budget", "replicas"}}.get(
        which, set()
    ) <= drawn
    problems: list[str] = []
    for figure in figures:
        name = figure["name"]
        if figure["svg"]["x1"] > WIDTH:
            problems.append(f"{name}: wider than the page")
        for legend in figure["legends"]:
            if not _inside(legend, figure["svg"]):
                problems.append(f"{name}: legend outside the figure {legend}")
            for area in figure["areas"]:
                if _overlap(legend, area):
                    problems.append(f"{name}: legend over a plotting area {legend} {area}")
        texts = [t for t in figure["texts"] if t["text"].strip()]
        for t in texts:
            if t["px"] < MIN_TEXT_PX - 0.01:
                problems.append(f"{name}: {t['text']!r} is {t['px']:.1f} px")
        for i, a in enumerate(texts):
            for b in texts[i + 1 :]:
                if _overlap(a["box"], b["box"], slack=1.0):
                    problems.append(f"{name}: {a['text']!r} overlaps {b['text']!r}")
    assert problems == []
