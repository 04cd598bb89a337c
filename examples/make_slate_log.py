"""Write ``scenarios/data/slate_log_sample.csv``: a small synthetic slate log with known truth.

A uniform random logging policy shows 1,000 users slates of 3 distinct items out of 20 (so
every item sits at every position with propensity 1/20), 6,000 slates over 60 days;
each shown item is clicked by a position-based model, P(click) = θ_k α_i with
θ = (1.0, 0.6, 0.35) and α_i drawn once from Beta(2, 5).  One row per shown item:

    user,item,timestamp,position,clicked,propensity

(``position`` 1-based, ``timestamp`` epoch seconds, one per slate).  The truth is written
beside it as ``slate_log_sample.truth.json`` (θ, α) so that a reader can check the click
model the lab fits.  ``scenarios/slate_log_replay.toml`` replays the log.

    python examples/make_slate_log.py [--out scenarios/data/slate_log_sample.csv]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import polars as pl

USERS, ITEMS, SLATES, POSITIONS = 1_000, 20, 6_000, 3
EXAMINATION = np.array([1.0, 0.6, 0.35])
START_S, SPAN_S = 1_700_000_000, 60 * 86_400


def slate_log(seed: int = 2026) -> tuple[pl.DataFrame, dict[str, list[float]]]:
    """The log's rows and its truth (``examination`` per position, ``attractiveness``)."""
    rng = np.random.default_rng(seed)
    alpha = rng.beta(2.0, 5.0, ITEMS)
    user = rng.integers(0, USERS, SLATES)
    ts = np.sort(rng.integers(START_S, START_S + SPAN_S, SLATES))
    # Three distinct items per slate, uniformly: each item at each position w.p. 1 / ITEMS.
    shown = np.argsort(rng.random((SLATES, ITEMS)), axis=1)[:, :POSITIONS]
    position = np.tile(np.arange(POSITIONS), SLATES)
    item = shown.reshape(-1)
    clicked = (rng.random(item.size) < EXAMINATION[position] * alpha[item]).astype(np.int64)
    rows = pl.DataFrame(
        {
            "user": np.repeat(user, POSITIONS) + 1,
            "item": item + 1,
            "timestamp": np.repeat(ts, POSITIONS),
            "position": position + 1,
            "clicked": clicked,
            "propensity": np.full(item.size, round(1 / ITEMS, 10)),
        }
    )
    truth = {
        "examination": EXAMINATION.tolist(),
        "attractiveness": [round(float(a), 6) for a in alpha],
    }
    return rows, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[1] / "scenarios/data/slate_log_sample.csv"
    parser.add_argument("--out", type=Path, default=default)
    args = parser.parse_args()
    rows, truth = slate_log()
    rows.write_csv(args.out)
    args.out.with_suffix(".truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    print(f"wrote {args.out} ({rows.height:,} rows, {rows['clicked'].sum():,} clicks)")


if __name__ == "__main__":
    main()
