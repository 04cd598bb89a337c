"""The report of a small run, opened in headless Chromium: it renders, logs no console
message, and its DOM holds every section.

Needs a Chromium binary: ``$CHROMIUM`` if set, else ``chromium`` (Debian's package) or
``chromium-browser`` on the PATH; skipped when none is installed.  In CI (Debian/Ubuntu):
``apt-get update && apt-get install -y --no-install-recommends chromium``.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from reports.sections import SECTIONS
from rollout_lab.cli import main

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.toml"
SMALL = [
    "--set",
    "traffic.duration=10m",
    "--set",
    "traffic.users=2000",
    "--set",
    "traffic.items=400",
    "--set",
    "traffic.arrivals.mean_rate_per_s=15",
    "--set",
    "rollout.analysis.interval=2m",
]
WIDTH, HEIGHT = 1280, 4000


def _chromium() -> str | None:
    configured = os.environ.get("CHROMIUM")
    if configured:
        return configured if shutil.which(configured) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not installed (apt-get install chromium, or set $CHROMIUM)",
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("browser")
    assert main(["run", str(QUICKSTART), "--out", str(out), "--force", "--quiet", *SMALL]) == 0
    return out / "report.html"


def browse(report: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
        report.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def console_messages(stderr: str) -> list[str]:
    """Lines Chromium logs for the page's console (errors, warnings, uncaught exceptions)."""
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


def test_screenshot_is_a_real_page(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    proc = browse(
        report, tmp_path / "profile", f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    assert (width, height) == (WIDTH, HEIGHT)
    assert len(data) > 100_000, "a blank or nearly empty page compresses far smaller"
    with Image.open(io.BytesIO(data)) as image:
        # Text, tables and figures give thousands of colours; a blank page gives one.
        assert image.convert("RGB").getcolors(maxcolors=500) is None
    assert console_messages(proc.stderr) == []


def test_dom_has_every_section_and_no_script(report: Path, tmp_path: Path) -> None:
    proc = browse(report, tmp_path / "profile", "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    for anchor, title in SECTIONS:
        assert f'<section id="{anchor}"><h2>{title}</h2>' in dom, anchor
    assert "<script" not in dom.lower()
    assert dom.count('<img src="data:image/png;base64,') >= 6
    assert console_messages(proc.stderr) == []
