"""Where traffic and truth come from: the synthetic world or a replayed log.

A ``Source`` hands the pipeline everything that differs between the two:

* the interaction matrices models are trained on (train window, everything before the run,
  the update window's active users and items);
* a ``truth`` that says how likely a user is to click an item once examined — from the
  synthetic world's latent affinities, or from whether the user really consumed it in the
  validation window of the log (used to calibrate predictions);
* ``requests(replication)``: the request stream (fresh Poisson traffic per replication for
  synthetic worlds; the logged events, the same every time, for logs) with, for logs, the
  items each request's user consumed next;
* organic consumption for drift, history arrays for segments, and a row-accounting block.

For logs there is no latent truth; ``world`` is a stand-in built from the baseline's factors
so that factor-space metrics (intra-list diversity) still have item vectors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from lab.artifacts import (
    code_fingerprint,
    derived_key,
    world_artifact,
    world_from_artifact,
    world_key,
)
from lab.calibration import LoggedFeedback
from lab.fitted_world import fitted_traffic
from lab.footprint import check_log_run
from lab.offpolicy_log import LoggedImpressions, read_logged_impressions
from lab.paths import expand_path, resolve_input_path
from lab.scenario import FittedWorld, FoldIn, LogSource, Scenario
from lab.versions import ClickTruth
from replay.artifact_store import Artifact, ArtifactStore
from replay.errors import UserInputError
from replay.events import EventTable, interaction_matrix
from replay.fitted_traffic import fitted_requests, make_fitted_world
from replay.fold_in import history_before, warm_up_rows
from replay.log_traffic import LogTraffic, replay_requests
from replay.logs import LogSpec, read_log, resolved_format
from replay.obd import obd_file_columns
from replay.registry import data_fingerprint
from replay.requests import RequestStream
from replay.synthetic import (
    ArrivalShape,
    History,
    SyntheticWorld,
    WorldSpec,
    drift_popularity,
    generate_history,
    generate_requests,
    make_world,
    sample_consumption,
    window_edges,
)
from replay.training import active_ids
from replay.windows import Window, WindowSpec, split_windows

__all__ = ["LogTruth", "Source", "build_source", "expand_path"]


@dataclass(frozen=True, slots=True)
class LogTruth:
    """Click probabilities for replayed logs: consumed items are likely clicks, others rare.

    ``relevance(users, items)`` (used to calibrate predictions) asks whether the user consumed
    the item in the validation window; per request the monitor asks whether the item is in
    what the user consumed next (``RequestStream.truth_*``).
    """

    validation: sp.csr_matrix  # users x items consumed in the validation window
    click_if_consumed: float
    click_otherwise: float
    position_decay: float

    def relevance(self, users: np.ndarray, items: np.ndarray, lift: float) -> np.ndarray:
        rows = self.validation[users]
        safe = np.where(items >= 0, items, 0)
        consumed = np.asarray(rows[np.arange(users.size)[:, None], safe].todense()) > 0
        p = np.where(consumed, self.click_if_consumed, self.click_otherwise).astype(np.float32)
        if lift:
            p = np.minimum(p * (1.0 + lift), 1.0)
        return np.where(items >= 0, p, 0.0).astype(np.float32)


@dataclass(slots=True)
class Source:
    world: SyntheticWorld
    truth: ClickTruth | LogTruth
    matrices: dict[str, Any]
    history_users: np.ndarray  # int32, the user of every interaction before the run
    history_items: np.ndarray  # int32, the item of every interaction before the run
    requests: Callable[[int, np.random.Generator], RequestStream]
    consumption: Callable[[RequestStream, np.random.Generator], tuple[np.ndarray, np.ndarray]]
    duration_s: float
    windows: dict[str, tuple[datetime, datetime]]  # "train", "update", "holdout"
    holdout: Callable[[np.random.Generator], sp.csr_matrix]  # what users consume after
    data: dict[str, Any] = field(default_factory=dict)
    live_world: SyntheticWorld | None = None
    #: Replayed logs with genre metadata: multi-hot int8 [n_items, n_genres] and the names.
    item_genres: np.ndarray | None = None
    genre_names: tuple[str, ...] = ()
    #: Replay-window impressions: with logging propensities (off-policy estimates) and/or
    #: positions (slates, the click model), if mapped.
    impressions: LoggedImpressions | None = None
    #: Replayed logs: the update window's requests and what came next (calibration feedback).
    feedback: LoggedFeedback | None = None
    #: Interactions users make on their own during ``[start_s, end_s)`` of the run (synthetic).
    organic: Callable[[float, float, np.random.Generator], sp.csr_matrix] | None = None
    #: Synthetic worlds: seconds before time zero of each history interaction (<= 0).
    history_offsets_s: np.ndarray | None = None
    #: Raw ids of the dense users and items (replayed logs: position = lab id), so that
    #: attribute tables, top-K tables and embeddings written in the log's ids land on the
    #: right rows; ``None``: the dense index is the id (synthetic worlds).
    user_ids: pl.Series | None = None
    item_ids: pl.Series | None = None
    #: Replayed logs with ``fold_in``: users x items, everything each user did before their
    #: first replayed event (``replay.fold_in.history_before``), folded into ALS versions.
    fold_in: sp.csr_matrix | None = None
    #: Keys naming the data in ``matrices`` (``lab.artifacts``); filled on first use for logs.
    data_keys: dict[str, str] = field(default_factory=dict)

    def data_key(self, name: str) -> str:
        """A key that changes exactly when ``matrices[name]`` does (its data fingerprint)."""
        if name not in self.data_keys:
            self.data_keys[name] = data_fingerprint(self.matrices[name])
        return self.data_keys[name]


def _matrices(
    events: pl.DataFrame,
    n_users: int,
    n_items: int,
    train: tuple[datetime, datetime],
    update: tuple[datetime, datetime],
) -> dict[str, Any]:
    """Users x items matrices: the train window, the update window, and both together."""
    train_matrix = interaction_matrix(events, n_users, n_items, *train)
    everything = interaction_matrix(events, n_users, n_items, train[0], max(train[1], update[1]))
    update_matrix = interaction_matrix(events, n_users, n_items, *update)
    update_users, update_items = active_ids(update_matrix)
    return {
        "train": train_matrix,
        "all": everything,
        "update": update_matrix,
        "update_users": update_users,
        "update_items": update_items,
    }


def _history_matrices(
    history: History, n_users: int, n_items: int, update_window_s: float
) -> dict[str, Any]:
    """``_matrices`` of a synthetic history: train before the update window, update in it."""
    in_update = history.offsets_s >= -update_window_s

    def matrix(mask: np.ndarray | None) -> sp.csr_matrix:
        users = history.users if mask is None else history.users[mask]
        items = history.items if mask is None else history.items[mask]
        ones = np.ones(users.shape[0], np.float32)
        # A user's items are distinct: no duplicates to sum.
        return sp.csr_matrix(
            sp.coo_matrix((ones, (users, items)), shape=(n_users, n_items)).tocsr(),
            dtype=np.float32,
        )

    update_matrix = matrix(in_update)
    update_users, update_items = active_ids(update_matrix)
    return {
        "train": matrix(~in_update),
        "all": matrix(None),
        "update": update_matrix,
        "update_users": update_users,
        "update_items": update_items,
    }


def _arrival_shape(scenario: Scenario) -> ArrivalShape:
    tr = scenario.traffic
    arrivals = tr.arrivals
    assert arrivals is not None
    if arrivals.kind == "poisson":
        mean, amplitude, period, peak = arrivals.rate_per_s, 0.0, 86400.0, 0.0
    else:
        mean, amplitude = arrivals.mean_rate_per_s, arrivals.amplitude
        period, peak = arrivals.period, arrivals.peak_at
    return ArrivalShape(
        mean,
        amplitude,
        period,
        peak,
        tuple((c.at, c.factor, c.length) for c in tr.flash_crowds),
        tuple((r.at, r.factor, r.length) for r in tr.ramps),
    )


def _draw_world(scenario: Scenario, rng: dict[str, np.random.Generator]) -> Artifact:
    """The latent truth, the live (drifted) world and the history, from their two streams."""
    tr = scenario.traffic
    world = (
        make_world(
            WorldSpec(tr.users, tr.items, tr.latent_factors, tr.popularity_skew, tr.taste_signal),
            rng=rng["world"],
        )
        if tr.fitted is None
        else make_fitted_world(
            fitted_traffic(tr.fitted),
            users=tr.users,
            items=tr.items,
            latent_factors=tr.latent_factors,
            signal=tr.taste_signal,
            rng=rng["world"],
        )
    )
    new_items = None
    if tr.new_items > 0:
        new_items = np.zeros(world.n_items, bool)
        count = round(tr.new_items * world.n_items)
        new_items[rng["history"].choice(world.n_items, count, replace=False)] = True
    history = generate_history(
        world,
        history_s=tr.history,
        events_per_user=tr.history_events_per_user,
        rng=rng["history"],
        new_items=new_items,
        new_items_since_s=tr.update_window,
    )
    # Live traffic may follow a drifted world: the truth users click by, not what models saw.
    live_world = drift_popularity(world, tr.popularity_drift, rng=rng["history"])
    return world_artifact(world, live_world, history)


def _parametric_requests(
    scenario: Scenario, world: SyntheticWorld
) -> Callable[[int, np.random.Generator], RequestStream]:
    """Poisson sessions of the scenario's arrival shape and session settings."""
    tr = scenario.traffic
    assert tr.duration is not None
    shape = _arrival_shape(scenario)
    duration = tr.duration

    def requests(_replication: int, traffic_rng: np.random.Generator) -> RequestStream:
        return generate_requests(
            world,
            shape,
            duration_s=duration,
            mean_requests_per_session=tr.session.mean_requests,
            mean_think_time_s=tr.session.mean_think_time,
            rng=traffic_rng,
        )

    return requests


def _fitted_requests(
    settings: FittedWorld, world: SyntheticWorld, duration: float
) -> Callable[[int, np.random.Generator], RequestStream]:
    """Users' lives by the fitted laws (``replay.fitted_traffic``), the run's part of them."""
    laws = fitted_traffic(settings)

    def requests(_replication: int, traffic_rng: np.random.Generator) -> RequestStream:
        return fitted_requests(laws, world.activity, duration_s=duration, rng=traffic_rng)

    return requests


def _synthetic(
    scenario: Scenario, rng: dict[str, np.random.Generator], store: ArtifactStore | None
) -> Source:
    tr = scenario.traffic
    assert tr.duration is not None
    code = code_fingerprint()
    key = world_key(scenario, code)
    # A fresh world goes through the same arrays as a stored one: same numbers either way.
    artifact = (
        store.fetch("world", key, lambda: _draw_world(scenario, rng))
        if store is not None
        else _draw_world(scenario, rng)
    )
    world, live_world, history = world_from_artifact(artifact)
    start, update_start, zero = window_edges(tr.history, tr.update_window)
    matrices = _history_matrices(history, world.n_users, world.n_items, tr.update_window)
    duration = tr.duration
    requests = (
        _parametric_requests(scenario, world)
        if tr.fitted is None
        else _fitted_requests(tr.fitted, world, duration)
    )

    def consumption(
        stream: RequestStream, probe_rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        probe = np.sort(probe_rng.choice(len(stream), size=min(20_000, len(stream)), replace=False))
        items = sample_consumption(live_world, stream.user[probe], rng=probe_rng)
        return stream.t_s[probe], items

    def holdout(holdout_rng: np.random.Generator) -> sp.csr_matrix:
        """Five organic picks each of up to 5,000 users drawn by activity, after time zero."""
        users = holdout_rng.choice(
            world.n_users,
            size=min(5_000, world.n_users),
            replace=False,
            p=world.activity / world.activity.sum(),
        )
        repeated = np.repeat(users, 5)
        items = sample_consumption(live_world, repeated, rng=holdout_rng)
        ones = np.ones(repeated.size, np.float32)
        matrix = sp.coo_matrix((ones, (repeated, items)), shape=(world.n_users, world.n_items))
        return sp.csr_matrix(matrix.tocsr(), dtype=np.float32)

    history_rate_per_s = len(history) / tr.history

    def organic(start_s: float, end_s: float, organic_rng: np.random.Generator) -> sp.csr_matrix:
        """What users consume on their own during the run, at the history's pace."""
        count = int(organic_rng.poisson(history_rate_per_s * (end_s - start_s)))
        users = organic_rng.choice(
            world.n_users, size=count, p=world.activity / world.activity.sum()
        )
        items = sample_consumption(live_world, users, rng=organic_rng)
        ones = np.ones(count, np.float32)
        matrix = sp.coo_matrix((ones, (users, items)), shape=(world.n_users, world.n_items))
        return sp.csr_matrix(matrix.tocsr(), dtype=np.float32)

    return Source(
        world=world,
        truth=ClickTruth(
            live_world,
            scenario.users.click_offset,
            scenario.users.position_decay,
            scenario.users.activity_engagement,
        ),
        matrices=matrices,
        history_users=history.users,
        history_items=history.items,
        history_offsets_s=history.offsets_s,
        requests=requests,
        consumption=consumption,
        duration_s=duration,
        windows={
            "train": (start, update_start),
            "update": (update_start, zero),
            "holdout": (zero, zero + timedelta(seconds=duration)),
        },
        holdout=holdout,
        data={"source": "synthetic", "history_events": len(history)},
        live_world=live_world,
        organic=organic,
        data_keys={name: derived_key(key, name) for name in ("train", "all", "update")},
    )


def _window(spec: Any) -> WindowSpec:
    return WindowSpec(start=spec.start, end=spec.end)


def _resolve(text: str, *, source: str, field: str, base_dir: Path | None) -> str:
    return resolve_input_path(text, source=source, field=field, base_dir=base_dir)


def _genres(
    log: LogSource, table: EventTable, log_path: str, *, source: str, base_dir: Path | None
) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """Multi-hot genres of the log's items from a MovieLens ``movies.csv``, if one is given."""
    if log.genres is None:
        return None, ()
    if log.genres == "auto":
        path = Path(log_path).with_name("movies.csv")
        if not path.is_file():
            return None, ()
    else:
        path = Path(
            _resolve(log.genres, source=source, field="traffic.log.genres", base_dir=base_dir)
        )
    try:
        movies = pl.read_csv(
            path, columns=["movieId", "genres"], schema_overrides={"genres": pl.String}
        )
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise UserInputError(
            f"{path}: cannot read genres ({type(exc).__name__}); traffic.log.genres must be a "
            "MovieLens movies.csv with movieId and genres columns (or unset it)"
        ) from None
    raw = table.item_ids
    if not raw.dtype.is_integer():
        return None, ()
    exploded = movies.with_columns(pl.col("genres").str.split("|")).explode("genres")
    names = tuple(
        sorted(g for g in exploded["genres"].unique().to_list() if g and g != "(no genres listed)")
    )
    index = {name: i for i, name in enumerate(names)}
    dense = pl.DataFrame({"raw": raw.cast(pl.Int64), "item": np.arange(raw.len())})
    joined = dense.join(
        exploded.rename({"movieId": "raw"}).with_columns(pl.col("raw").cast(pl.Int64)),
        on="raw",
        how="inner",
    ).filter(pl.col("genres").is_in(list(names)))
    genres = np.zeros((raw.len(), len(names)), np.int8)
    genres[
        joined["item"].to_numpy(),
        np.array([index[g] for g in joined["genres"].to_list()], np.int64),
    ] = 1
    return genres, names


def _spec(log: LogSource, *, source: str, base_dir: Path | None) -> LogSpec:
    path = _resolve(log.path, source=source, field="traffic.log.path", base_dir=base_dir)
    return LogSpec(
        path=path,
        format=log.format,
        columns=log.columns,
        timestamp_unit=log.timestamp_unit,
        event_types=frozenset(log.event_types) if log.event_types is not None else None,
        session_gap_s=log.session_gap,
        delimiter=log.delimiter,
    )


def _replayed(scenario: Scenario, *, source: str, base_dir: Path | None) -> Source:
    log = scenario.traffic.log
    assert log is not None
    spec = _spec(log, source=source, base_dir=base_dir)
    table = read_log(spec)
    check_log_run(
        scenario, table.n_users, table.n_items, table.accounting["input_rows"], source=source
    )
    split = split_windows(
        table,
        train=_window(log.train),
        replay=_window(log.replay),
        update=_window(log.update) if log.update is not None else None,
        source=source,
        prefix="traffic.log.",
        allow_overlap=log.allow_overlap,
        allow_setting="traffic.log.allow_overlap",
    )
    n_users, n_items = table.n_users, table.n_items
    train = (split.train.start, split.train.end)
    update = (split.update.start, split.update.end) if split.update else (train[1], train[1])
    events = table.events
    matrices = _matrices(events, n_users, n_items, train, update)
    before_replay = events.filter(pl.col("ts") < split.replay.start)
    validation = matrices["update"] if split.update is not None else matrices["train"]
    traffic = LogTraffic(
        speedup=log.speedup,
        requests=log.requests,
        horizon=log.horizon,
        rate_per_s=log.rate_per_s,
        max_truth=log.max_truth,
    )
    since = split.train.start
    warm_up = _warm_up(log.fold_in, events, since, n_users)
    replay_warm_up = warm_up(split.replay)
    stream = replay_requests(table, split.replay, traffic, source=source, skip=replay_warm_up)
    feedback = None
    if split.update is not None:
        # The update window's requests, with the replay's horizon: what versions calibrate on.
        update_warm_up = warm_up(split.update)
        held_out = replay_requests(table, split.update, traffic, source=source, skip=update_warm_up)
        if len(held_out):
            feedback = LoggedFeedback(
                users=held_out.user.astype(np.int64),
                consumed_next=sp.csr_matrix(
                    (
                        np.ones(held_out.truth_items.size, np.float32),
                        held_out.truth_items,
                        held_out.truth_ptr,
                    ),
                    shape=(len(held_out), n_items),
                ),
                known_before=(
                    matrices["train"]
                    if log.fold_in is None
                    else history_before(
                        events,
                        split.update,
                        update_warm_up,
                        since=since,
                        n_users=n_users,
                        n_items=n_items,
                    )
                ),
                popular_before=np.argsort(-matrices["train"].getnnz(axis=0), kind="stable")[
                    : scenario.users.list_size
                ].astype(np.int32),
                click_if_consumed=log.click_if_consumed,
                click_otherwise=log.click_otherwise,
                window=f"update window {split.update}",
                fold_in=log.fold_in is not None,
            )
    if len(stream) == 0:
        raise UserInputError(
            f"{source}: traffic.log.replay holds no events in {split.replay} "
            "(move the replay window into the log's time span)"
        )
    if table.n_items < scenario.users.list_size:
        raise UserInputError(
            f"{table.source}: has {table.n_items} distinct items, fewer than users.list_size "
            f"({scenario.users.list_size}); lower users.list_size or use a larger log"
        )
    duration = max(float(stream.t_s[-1]) + 1.0, 1.0)
    world = _stand_in_world(n_users, n_items, matrices["all"])

    def requests(_replication: int, _rng: np.random.Generator) -> RequestStream:
        return stream

    def consumption(s: RequestStream, _rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        has = s.truth_ptr[1:] > s.truth_ptr[:-1]
        return s.t_s[has], s.truth_items[s.truth_ptr[:-1][has]].astype(np.int64)

    accounting = dict(table.accounting)
    log_path = _resolve(log.path, source=source, field="traffic.log.path", base_dir=base_dir)
    item_genres, genre_names = _genres(log, table, log_path, source=source, base_dir=base_dir)
    impressions = None
    cols = log.columns
    fmt = resolved_format(spec)
    if fmt == "obd":
        # Every row of the Open Bandit Dataset is a logged impression with its propensity.
        obd = obd_file_columns(log_path, label=log_path)
        impressions = read_logged_impressions(
            log_path,
            table,
            obd.impression_roles(),
            (split.replay.start, split.replay.end),
            timestamp_unit=log.timestamp_unit,
            source=source,
            user_features=obd.user_features,
        )
    elif cols is not None and cols.reward is not None:
        # Off-policy rows (propensity and reward) or a long-form impression log (position and
        # clicks, no propensity): the scenario's schema allows only these two.
        mapping = {
            "user": cols.user,
            "item": cols.item,
            "timestamp": cols.timestamp,
            "propensity": cols.propensity,
            "reward": cols.reward,
            "position": cols.position,
        }
        impressions = read_logged_impressions(
            log_path,
            table,
            mapping,
            (split.replay.start, split.replay.end),
            timestamp_unit=log.timestamp_unit,
            source=source,
        )
    replay_matrix = interaction_matrix(
        events, n_users, n_items, split.replay.start, split.replay.end
    )
    fold_in = None
    data_fold_in = None
    if log.fold_in is not None:
        fold_in = history_before(
            events, split.replay, replay_warm_up, since=since, n_users=n_users, n_items=n_items
        )
        replayed = np.unique(stream.user)
        data_fold_in = {
            "warm_up": log.fold_in.warm_up,
            "fraction": log.fold_in.fraction,
            "warm_up_events": {
                "update": 0 if split.update is None else int(update_warm_up.sum()),
                "replay": int(replay_warm_up.sum()),
            },
            "replayed_users": int(replayed.size),
            "replayed_users_with_history": int((fold_in.getnnz(axis=1)[replayed] > 0).sum()),
        }
    return Source(
        world=world,
        truth=LogTruth(
            validation, log.click_if_consumed, log.click_otherwise, scenario.users.position_decay
        ),
        matrices=matrices,
        history_users=before_replay["user"].to_numpy().astype(np.int32),
        history_items=before_replay["item"].to_numpy().astype(np.int32),
        requests=requests,
        consumption=consumption,
        duration_s=duration,
        windows={
            "train": train,
            "update": update,
            "holdout": (split.replay.start, split.replay.end),
        },
        holdout=lambda _rng: replay_matrix,
        item_genres=item_genres,
        genre_names=genre_names,
        impressions=impressions,
        feedback=feedback,
        fold_in=fold_in,
        user_ids=table.user_ids,
        item_ids=table.item_ids,
        data={
            "source": "log",
            "path": str(log.path),
            "format": fmt,
            "history_events": before_replay.height,
            "accounting": accounting,
            "windows": split.summary(),
            "replayed_requests": len(stream),
            **({} if data_fold_in is None else {"fold_in": data_fold_in}),
        },
    )


def _warm_up(
    fold_in: FoldIn | None, events: pl.DataFrame, since: datetime, n_users: int
) -> Callable[[Window], np.ndarray]:
    """The warm-up rows of a window (``replay.fold_in.warm_up_rows``); none without fold-in."""
    warm_up = 0 if fold_in is None else fold_in.warm_up
    fraction = 0.0 if fold_in is None else fold_in.fraction

    def rows(window: Window) -> np.ndarray:
        return warm_up_rows(
            events, window, since=since, warm_up=warm_up, n_users=n_users, fraction=fraction
        )

    return rows


def _stand_in_world(n_users: int, n_items: int, matrix: sp.csr_matrix) -> SyntheticWorld:
    """A world with no truth in it: activity from history, zero factors (replaced later)."""
    counts = np.asarray(matrix.getnnz(axis=1), dtype=np.float64) + 1.0
    return SyntheticWorld(
        user_factors=np.zeros((n_users, 1), np.float32),
        item_factors=np.zeros((n_items, 1), np.float32),
        item_bias=np.zeros(n_items, np.float32),
        activity=counts / counts.mean(),
        signal=0.0,
    )


def build_source(
    scenario: Scenario,
    rng: dict[str, np.random.Generator],
    *,
    source: str,
    base_dir: Path | None = None,
    store: ArtifactStore | None = None,
) -> Source:
    """The scenario's world and traffic; a synthetic world comes from ``store`` if it has it."""
    if scenario.traffic.source == "log":
        return _replayed(scenario, source=source, base_dir=base_dir)
    return _synthetic(scenario, rng, store)
