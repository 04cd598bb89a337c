"""Nothing the lab did not write is ever touched.

Files of every name the lab writes (the outputs, ``INCOMPLETE``, the manifest, the old
temporary names), unrelated files, hidden files, subfolders and symbolic links (to a file
outside, to a folder outside, dangling) are planted in ``--out``; then ``run`` without and
with ``--force`` and ``check`` with ``--force`` run against it, first as a folder the lab never
wrote, then as an earlier run of the lab with the same plants beside it.  Every planted
path, and the files the links point to, must be byte for byte what it was, links still
pointing where they pointed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from reliability_support import QUICKSTART, Outcome

from rollout_lab.outputs import INCOMPLETE, MANIFEST, OUTPUT_FILES

TINY = (
    "--set", "traffic.duration=5m", "--set", "traffic.users=1000", "--set", "traffic.items=200",
    "--set", "traffic.arrivals.mean_rate_per_s=10",
)  # fmt: skip

LAB_NAMES = (*OUTPUT_FILES, INCOMPLETE, MANIFEST)


def _plant(out: Path, outside: Path, *, lab_names: bool) -> None:
    """Unrelated files and links; with ``lab_names`` also files of every lab name."""
    out.mkdir(parents=True, exist_ok=True)
    if lab_names:
        for name in LAB_NAMES:
            (out / name).write_bytes(f"the user's own {name}\n".encode())
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    (out / ".hidden").write_bytes(b"\x00\x01binary")
    (out / "sub" / "deeper").mkdir(parents=True)
    (out / "sub" / "deeper" / "data.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    for name in ("report.html", "junit.xml", "summary.json", MANIFEST, INCOMPLETE):
        (out / f".{name}.tmp").symlink_to(outside / "target.txt")
    (out / "report.html.tmp").write_text("not ours either", encoding="utf-8")
    (out / "link-to-file").symlink_to(outside / "target.txt")
    (out / "link-to-folder").symlink_to(outside)
    (out / "dangling").symlink_to(outside / "nowhere")


def _snapshot(root: Path, skip: frozenset[str] = frozenset()) -> dict[str, tuple[str, bytes]]:
    """Every path under ``root`` (links not followed) with its kind and bytes or target."""
    seen: dict[str, tuple[str, bytes]] = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if relative in skip:
            continue
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            seen[relative] = ("link", os.readlink(path).encode())
        elif stat.S_ISDIR(info.st_mode):
            seen[relative] = ("folder", b"")
        else:
            seen[relative] = ("file", path.read_bytes())
    return seen


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "target.txt").write_text("precious, outside --out", encoding="utf-8")
    return folder


@pytest.mark.parametrize("lab_names", [True, False], ids=["lab-names", "unrelated-only"])
def test_a_folder_the_lab_never_wrote_is_never_touched(
    lab_names: bool, cli: Callable[..., Outcome], tmp_path: Path, outside: Path
) -> None:
    out = tmp_path / "check" / "quickstart"  # also check's folder for quickstart.toml
    _plant(out, outside, lab_names=lab_names)
    before, outside_before = _snapshot(out), _snapshot(outside)
    attempts = [
        ("run", str(QUICKSTART), "--out", str(out), *TINY),
        ("run", str(QUICKSTART), "--out", str(out), "--force", "--requests-parquet", *TINY),
        ("check", str(QUICKSTART), "--out", str(tmp_path / "check"), "--force", *TINY),
    ]
    for args in attempts:
        result = cli(*args)
        assert result.code == 2, (args, result.err)
        assert any("rollout-lab: error: --out" in line for line in result.err), result.err
        assert _snapshot(out) == before, args
        assert _snapshot(outside) == outside_before, args


def test_an_earlier_run_with_plants_beside_it(
    cli: Callable[..., Outcome], tmp_path: Path, outside: Path
) -> None:
    """--force replaces the earlier run's own files and nothing else; check does the same."""
    base = tmp_path / "check"
    out = base / "quickstart"
    first = cli("run", str(QUICKSTART), "--out", str(out), "--requests-parquet", "--quiet", *TINY)
    assert first.code == 0, first.err
    _plant(out, outside, lab_names=False)
    lab_written = frozenset(p.name for p in out.iterdir() if p.name in LAB_NAMES)
    assert lab_written == {*OUTPUT_FILES, MANIFEST}
    plants, outside_before = _snapshot(out, lab_written), _snapshot(outside)

    refused = cli("run", str(QUICKSTART), "--out", str(out), *TINY)
    assert refused.code == 2 and "holds an earlier run" in refused.err[0]
    assert _snapshot(out, lab_written) == plants

    forced = cli("run", str(QUICKSTART), "--out", str(out), "--force", "--quiet", *TINY)
    assert forced.code == 0, forced.err
    assert _snapshot(out, lab_written) == plants
    assert _snapshot(outside) == outside_before
    # the stale requests.parquet (listed, unchanged) is gone; the new run is complete
    assert {p.name for p in out.iterdir() if p.name in LAB_NAMES} == lab_written - {
        "requests.parquet"
    }

    checked = cli("check", str(QUICKSTART), "--out", str(base), "--force", *TINY)
    assert checked.code == 0, checked.err
    assert _snapshot(out, lab_written) == plants
    assert _snapshot(outside) == outside_before
