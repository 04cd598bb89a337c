"""``summary.json`` as pydantic models: its one description, next to its builder.

:class:`Summary` validates a summary (``Summary.model_validate(document)``) and gives its
JSON Schema (``rollout-lab schema summary``), for editors and for programs that read
summaries.  Every table is closed (``extra="forbid"``): a key the builder adds must be added
here too, and the tests validate every summary they write, so the two cannot drift apart.
Tables whose keys are data (version names, segments, skip reasons) are ``dict[str, ...]``;
the few blocks copied from elsewhere whole (the resolved settings, a replayed log's
windows, the decisions' numbers) are open.

:func:`summary_tree` derives from the models the dotted paths an expectation may name.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LEAF", "OPEN", "VERSIONS", "Summary", "summary_json_schema", "summary_tree"]

Number = float | None
Interval = list[float | None]
#: A key that is a version's name (the path tree marks it :data:`VERSIONS`).
VersionName = typing.NewType("VersionName", str)


class Block(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class OpenBlock(BaseModel):
    """A table copied whole from elsewhere: known keys typed, others allowed."""

    model_config = ConfigDict(extra="allow", defer_build=True)


# --- scenario, decision ----------------------------------------------------------------------


class ScenarioInfo(Block):
    name: str
    description: str
    seed: int
    file: str | None
    settings: dict[str, Any] = Field(description="The resolved scenario, every default filled in")


class VarianceModel(Block):
    a: float
    b: float


class VarianceModels(Block):
    candidate: VarianceModel
    baseline: VarianceModel
    fitted_on: int


class ProjectedWeight(Block):
    weight: float
    median_s: Number = Field(description="Median time to decision; null beyond the horizon")
    quartiles_s: Interval
    decided_share: float
    horizon_s: float


class Projection(Block):
    metric: Literal["ctr"]
    effect_relative: float
    effect_abs: float
    baseline_ctr: float
    alpha: float
    tau2: float
    interval_s: float
    observed_weight: float
    elapsed_s: float
    variance_model: VarianceModels
    weights: list[ProjectedWeight]
    basis: str


class Decision(Block):
    verdict: str
    tone: Literal["pass", "fail", "neutral"]
    candidate: str
    reason: str
    action: str
    projected: str | None
    projection: Projection | None


class Requests(Block):
    arrivals: int
    served: int
    fallback: int
    dropped: int
    shadow: int
    not_sent: int | None = Field(
        default=None,
        description="Remembering users: requests of users who had left, never sent",
    )


# --- versions ---------------------------------------------------------------------------------


class Latency(Block):
    p50: Number
    p95: Number
    p99: Number
    mean: Number


class ModelLatency(Latency):
    requests: int


class Calibrator(Block):
    model: str
    intercept: Number
    weights: dict[str, Number]
    fitted_on: str


class TrafficCoverage(Block):
    traffic_users: int = Field(description="Distinct users in the run's traffic")
    share: Number = Field(description="Share of them with a list of the version's own")


class ModelInfo(Block):
    algorithm: str
    parent: str | None
    update: str | None
    factors: int
    training_s: Number
    popularity_fallback_users: int
    platt: None
    calibration: Calibrator | None
    source: Literal["lab", "topk", "embeddings", "plugin"] = Field(
        description="lab: an implicit model the lab built (in this run or loaded from the "
        "registry, the same bytes); topk, embeddings, plugin: built by another system"
    )
    registry_id: str | None = Field(
        description="The version's registry id (loaded, or registered by this run); null "
        "when not in a registry"
    )
    provenance: OpenBlock | None = Field(
        description="The registry's provenance.json (parent_id, update, train_window, "
        "data_fingerprint, hyperparameters, metrics, ...), or for an external version its "
        "path as the scenario gives it, sha256, row accounting and fallback"
    )
    coverage: TrafficCoverage | None = Field(
        description="External lists or embeddings: how many of the traffic's users they cover"
    )


class Bin(Block):
    lower: Number
    upper: Number
    count: int
    mean_predicted: Number
    observed_rate: Number


class CalibrationQuality(Block):
    basis: str
    requests: int
    n_bins: int
    n_bins_equal_mass: int
    ece: Number
    ece_equal_mass: Number
    slope: Number
    slope_ci95: Interval
    slope_users: int | None
    slope_effective_users: Number
    intercept: Number
    mean_predicted: Number
    observed_rate: Number
    prediction_range: Interval
    bins: list[Bin]
    bins_equal_mass: list[Bin]
    warnings: list[str]


class GenreCalibration(Block):
    basis: str
    genres: str | None
    n_genres: int
    alpha: float
    lists: int
    impressions: int
    kl: Number


class Coverage(Block):
    catalogue_coverage: Number
    exposure_gini: Number


class Diversity(Block):
    basis: str
    factors: str
    popularity: str
    lists: int
    impressions: int
    intra_list_diversity: Number
    catalogue_coverage: Number
    exposure_gini: Number
    novelty_bits: Number
    average_recommended_popularity: Number
    genre_intra_list_diversity: Number
    genres: str | None
    if_shown_to_all_traffic: Coverage


class NoiseFloor(Block):
    against: str
    jaccard_at_k: Number
    rbo: Number
    identical_lists: Number
    jaccard_at_k_ci95: Interval
    warnings: list[str]


class RelativeToFloor(Block):
    jaccard_difference: Number
    jaccard_difference_ci95: Interval
    change_ratio: Number


class Stability(Block):
    against: str
    users: int
    k: int
    jaccard_at_k: Number
    rbo: Number
    identical_lists: Number
    rbo_p: float
    noise_floor: NoiseFloor | None
    relative_to_noise_floor: RelativeToFloor | None


class Lift(Block):
    against: str
    difference: Number
    difference_ci95: Interval
    relative_lift: Number
    relative_lift_ci95: Interval


class HitAtK(Block):
    method: Literal["observed", "expected"]
    basis: str
    k: int
    requests: int
    rate: Number
    ci95: Interval


class Engagement(Block):
    sessions: int
    clicks_per_session: Number
    clicks_per_session_ci95: Interval
    abandoned_sessions_fraction: Number
    abandon_rate_ci95: Interval
    ctr_vs_baseline: Lift | None
    hit_at_k: HitAtK | None


class AttributeQuality(Block):
    """One categorical item attribute over the lists a version served (``reports.attributes``)."""

    basis: str
    levels: int = Field(description="Values of the attribute in the catalogue")
    lists: int
    kl: Number = Field(description="Steck calibration KL(p || q~) in nats, alpha = 0.01")
    intra_list_diversity: Number = Field(description="Mean pairwise Jaccard distance")
    value_coverage: Number = Field(description="levels_shown / levels")
    levels_shown: int


class Quality(Block):
    calibration: CalibrationQuality
    genre_calibration: GenreCalibration
    diversity: Diversity
    stability: Stability | None
    engagement: Engagement
    by_attribute: dict[str, AttributeQuality] | None = Field(
        default=None, description="Per item attribute of [attributes.items] (keys are data)"
    )


class ShadowLatency(Block):
    p50: Number
    p99: Number


class Shadow(Block):
    requests: int
    latency_ms: ShadowLatency


class StageCounts(Block):
    """What a stage did with one kind of traffic (users' requests, or mirrored copies)."""

    entered: int
    completed: int
    timeouts: int
    degraded: int
    sojourn_ms_mean: Number
    sojourn_ms_p50: Number
    sojourn_ms_p95: Number
    sojourn_ms_p99: Number


class StageBlock(StageCounts):
    """One stage of a path: users' requests, and apart the mirrored copies (null: none)."""

    name: str
    degraded_first_here: int
    shadow: StageCounts | None


class AnswerQuality(Block):
    """Engagement and calibration of one kind of answer a staged path computed."""

    lists: int
    clicks: int
    ctr: Number
    judged: int
    mean_predicted: Number
    observed_rate: Number
    ece: Number


class ServingPath(Block):
    """A staged serving path: its stages in order and the answers served degraded."""

    stages: list[StageBlock]
    answers: int
    degraded_answers: int
    degraded_rate: Number
    degraded_list: str
    full_quality: AnswerQuality
    degraded_quality: AnswerQuality


class AutoscalerBlock(Block):
    """Ready replicas over time under the version's autoscaler."""

    min_replicas_seen: int
    max_replicas_seen: int
    peak_desired: int
    changes: int
    mean_replicas: Number
    timeline: list[list[float | int | None]]


class Version(Block):
    role: Literal["baseline", "candidate", "release", "other"]
    requests: int
    users: int
    served: int
    fallback: int
    dropped: int
    latency_ms: Latency
    model_latency_ms: ModelLatency
    slo_under_budget: Number
    cache_hit_rate: Number
    stale_rate: Number
    timeout_rate: Number
    error_rate: Number
    clicks: int
    ctr: Number
    ctr_ci95: Interval
    abandon_rate: Number
    model: ModelInfo
    quality: Quality
    shadow: Shadow | None = None
    serving_path: ServingPath | None = None
    autoscaler: AutoscalerBlock | None = None


class Served(Block):
    requests: int
    share_of_requests: Number
    clicks: int
    ctr: Number
    ctr_ci95: Interval
    latency_ms: ShadowLatency
    assigned_to: dict[str, int]
    lists_of: dict[str, int] | None = None


# --- cache, rollout, releases, decisions, windows -------------------------------------------


class SingleFlight(Block):
    coalesced: int
    coalesced_rate_of_misses: Number
    by_version: dict[VersionName, int]


class SloAlert(Block):
    long_s: float
    short_s: float
    burn_rate: float
    fired: bool
    first_fired_at_s: Number
    firing_s: Number


class SloVersion(Block):
    requests: int
    compliance: Number
    burn_rate: Number


class UpdateWindow(Block):
    """From the candidate's first exposure to the rollout's promotion or rollback (else the
    end of the run), and the share of the SLO's error budget spent meanwhile."""

    from_s: Number
    to_s: Number
    budget_spent: Number


class SloBlock(Block):
    """One SLO over all traffic: compliance, burn rate, error budget spent, alerts."""

    kind: Literal["latency", "availability"]
    target: float
    threshold_ms: Number
    period_s: float
    requests: int
    good: int
    compliance: Number
    burn_rate: Number
    budget_spent: Number
    budget_spent_since_exposure: Number
    update_window: UpdateWindow | None
    window_budget_spent: list[float | None]
    alerts: list[SloAlert]
    alerts_fired: int
    versions: dict[VersionName, SloVersion]


class ResourceVersion(Block):
    footprint_gb: Number
    footprint: Literal["declared", "factor tables"]
    replicas: int
    from_s: Number
    to_s: Number
    replica_hours: Number
    gb_hours: Number
    oom_kills: int | None = None
    replica_hours_lost_to_oom: Number = None


class NodesBlock(Block):
    nodes: int
    node_memory_gb: float
    restart_delay_s: float
    first_oom_kill_s: Number
    peak_gb: list[float | None]


class Resources(Block):
    """Replica memory and cost over the run (``[resources]``)."""

    overhead_mb: float
    nodes: NodesBlock | None
    versions: dict[VersionName, ResourceVersion]
    replica_hours: Number
    gb_hours: Number


class Cache(Block):
    enabled: bool
    hits: int | None = None
    misses: int | None = None
    expired: int | None = None
    stale_serves: int | None = None
    evictions: int | None = None
    flushes: int | None = None
    hit_rate: Number = None
    flush_times_s: list[float | None] | None = None
    single_flight: SingleFlight | None = None


class RolloutNumbers(Block):
    policy: str
    outcome: str
    final_weight: float
    max_candidate_weight: float
    analyses: int
    failures: int
    first_exposure_s: Number
    time_to_detect_s: Number
    time_to_rollback_s: Number
    time_to_promote_s: Number
    rollback_at_s: Number
    first_failure_at_s: Number
    #: why an unfinished rollout is stuck, in plain words; None when it is not
    waiting_for: str | None = None


class ReleaseNumbers(RolloutNumbers):
    release: int
    version: str
    parent: str | None
    started_s: Number
    #: the version production returned to when this release was rolled back
    #: (``release_train.rollback_to``); None when production stayed where it was
    restored: str | None = None


class Rollout(RolloutNumbers):
    releases: dict[VersionName, ReleaseNumbers] | None = None
    promoted_releases: int | None = None
    production: str | None = None


class Routing(Block):
    at_s: float
    unit: Literal["user", "session"]
    units: int
    baseline: str
    candidate: str
    candidate_weight: float
    share: dict[str, float]


class ReleaseWindow(Block):
    requests: int
    ctr: Number
    ctr_ci95: Interval
    latency_p99_ms: Number


class ReleaseLift(Block):
    difference: Number
    difference_ci95: Interval
    relative_lift: Number


class Release(Block):
    release: int
    version: str
    parent: str | None
    production: str
    started_s: Number
    ended_s: Number
    outcome: str
    #: the version production returned to on this release's rollback (``rollback_to``)
    restored: str | None = None
    time_to_decision_s: Number
    window: ReleaseWindow
    production_window: ReleaseWindow
    ctr_vs_production: ReleaseLift | None


class DecisionRecord(Block):
    t_s: float
    release: int
    step: int
    action: str
    reason: str
    weight: float
    numbers: dict[str, Number] = Field(description="What the rule read, by name")


class WindowSeries(Block):
    requests: list[int | None]
    latency_p99_ms: list[Number]
    ctr: list[Number]
    cache_hit_rate: list[Number]
    ece: list[Number]


class WindowDelta(Block):
    against: str
    candidate: str
    difference: list[Number]
    difference_ci95: list[Interval]


class Windows(Block):
    t_start_s: list[float]
    t_end_s: list[float]
    versions: dict[VersionName, WindowSeries]
    candidate_vs_baseline: WindowDelta | None


# --- segments, churn, off-policy, drift, data, timing, verdict -------------------------------


class GroupVersion(Block):
    impressions: int
    clicks: int
    ctr: Number
    ctr_ci95: Interval
    abandon_rate: Number
    hit_at_k: Number
    hit_at_k_ci95: Interval
    ece: Number = None
    intra_list_diversity: Number = None
    stability: Number = None


class Difference(Block):
    difference: Number
    difference_ci95: Interval
    relative_lift: Number


class Group(Block):
    users: int | None = None
    requests: int | None = None
    items: int | None = None
    impressions: int | None = None
    versions: dict[VersionName, GroupVersion]
    candidate_vs_baseline: Difference | None


class Worst(Difference):
    segment: str | None = None
    bucket: str | None = None


class SegmentBlock(Block):
    basis: str
    rules: dict[str, str]
    baseline: str
    candidate: str
    by_segment: dict[str, Group] | None = None
    by_bucket: dict[str, Group] | None = None
    worst: Worst | None


class WorstOverall(Difference):
    kind: Literal["user_segment", "item_popularity", "tenure"]
    group: str


class AttributeGroupVersion(Block):
    users: int
    ctr: Number
    ctr_ci95: Interval


class AttributeDifference(Difference):
    difference_ci95_adjusted: Interval = Field(
        description="Bonferroni-corrected for the groups compared (each at 1 - 0.05 / groups)"
    )


class AttributeGroup(Block):
    users: int
    requests: int
    users_on_candidate: Number = Field(
        description="Share of the group's users assigned the candidate at least once"
    )
    versions: dict[VersionName, AttributeGroupVersion]
    candidate_vs_baseline: AttributeDifference | None


class AttributeWorst(AttributeDifference):
    group: str
    verdict: str


class Adjustment(Block):
    method: Literal["bonferroni"]
    groups: int
    level: float


class UserAttributeBlock(Block):
    basis: str
    baseline: str
    candidate: str
    adjustment: Adjustment
    by_group: dict[str, AttributeGroup]
    worst: AttributeWorst | None


class Segments(SegmentBlock):
    item_popularity: SegmentBlock
    tenure: SegmentBlock
    worst_overall: WorstOverall | None
    by_attribute: dict[str, UserAttributeBlock] = Field(
        default_factory=dict, description="Per user attribute of [attributes.users] (keys are data)"
    )


class ExposureCell(Block):
    exposure_share: Number
    ci95: Interval
    to_catalogue: Number
    to_popularity: Number


class ShareChange(Block):
    difference: Number
    difference_ci95: Interval


class ProviderGroup(Block):
    items: int
    catalogue_share: Number
    popularity_share: Number
    versions: dict[VersionName, ExposureCell]
    candidate_vs_baseline: ShareChange | None


class ProviderVersion(Block):
    slots: Number
    users: int
    tv_to_catalogue: Number
    tv_to_popularity: Number


class MostChanged(ShareChange):
    group: str
    verdict: str


class ProviderFairness(Block):
    attribute: str
    basis: str
    baseline: str
    candidate: str
    groups: dict[str, ProviderGroup]
    versions: dict[VersionName, ProviderVersion]
    most_changed: MostChanged | None


class Fairness(Block):
    providers: ProviderFairness


class ChurnPair(Block):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from")
    to: str
    changes: int
    mean_churn: Number


class Churn(Block):
    basis: str
    users: int
    users_changed: int
    share_changed: Number
    changes: int
    mean_churn: Number
    by_pair: list[ChurnPair]


class DriftTest(Block):
    psi: Number
    ks_statistic: Number
    ks_p_value: Number
    live_samples: int
    alert: bool | None = Field(description="null when there were too few samples to judge")
    status: str


class DriftWindow(Block):
    t_start_s: float
    t_end_s: float
    item_popularity_psi: Number
    alert: bool


class Drift(Block):
    item_popularity: DriftTest | None
    user_activity: DriftTest | None
    windows: list[DriftWindow]
    alert_threshold_psi: float


class TableAccounting(Block):
    input_rows: int
    kept: int
    skipped: dict[str, int] = Field(description="Rows left out, by reason (keys are data)")


class TableColumn(Block):
    levels: int
    multi_valued: bool


class AttributeTableInfo(Block):
    path: str
    accounting: TableAccounting
    ids: int
    ids_without_row: int
    attributes: dict[str, TableColumn]
    ignored: dict[str, str] = Field(description="Columns not grouped by, and why")


class DataAttributes(Block):
    items: AttributeTableInfo | None
    users: AttributeTableInfo | None


class Data(Block):
    source: Literal["synthetic", "log"]
    users: int
    items: int
    history_events: int
    path: str | None = None
    format: str | None = None
    replayed_requests: int | None = None
    accounting: dict[str, Any] | None = Field(
        default=None, description="input_rows, kept and skipped.REASON (keys are data)"
    )
    windows: dict[str, Any] | None = None
    fold_in: dict[str, Any] | None = Field(
        default=None,
        description="Replayed users folded in (traffic.log.fold_in): warm_up, warm_up_events "
        "per window (taken as history, not replayed), replayed_users and how many had history",
    )
    attributes: DataAttributes | None = None


class Timing(Block):
    wall_s: float
    prepare_s: float
    simulate_s: float
    sim_s: float
    requests_per_wall_s: float
    noise_floor_training_s: Number
    report_s: Number = None
    #: the noise floor's background work (training and lists), beside the simulation
    noise_floor_s: Number = None
    #: preparation's phases: the world (or log) and history, inside implicit's training calls
    #: (0 when every version came from the artifact cache), top-K list scoring
    world_s: Number = None
    training_s: Number = None
    top_k_s: Number = None


class Expectation(Block):
    metric: str
    condition: str
    observed: str | float | int | bool | None
    passed: bool


class Verdict(Block):
    passed: bool
    expectations: list[Expectation]


# --- remembering users -----------------------------------------------------------------------


class RememberingVersion(Block):
    users_exposed: int = Field(description="Users with a request assigned to the version")
    retained_users: int = Field(description="Of users_exposed, those who had not left")
    retained: Number = Field(description="Share of users_exposed who had not left by the end")
    retained_ci95: Interval = Field(description="Wilson interval over users")
    return_decisions: int = Field(
        description="Session starts of returning users whose previous session ended here"
    )
    returned: int
    return_rate: Number = Field(description="returned / return_decisions")
    return_rate_ci95: Interval = Field(description="Wilson interval over decisions")
    satisfaction: Number = Field(description="Mean satisfaction (0-1) after each request")
    satisfaction_ci95: Interval = Field(description="Delta method, clustered by user")
    list_change: Number = Field(
        description="Mean 1 - overlap with the session's previous list, where there was one"
    )
    list_change_ci95: Interval
    abrupt_changes: int = Field(description="Requests keeping under half the previous list")
    clicks: int
    dwell_s_per_click: Number = Field(description="Mean dwell time per click, seconds")
    dwell_s_per_click_ci95: Interval
    conversions: int
    conversion_rate: Number = Field(description="Conversions per click")
    conversion_rate_ci95: Interval = Field(description="Wilson interval over clicks")


class AtRollback(Block):
    rollback_at_s: float
    users: int = Field(description="Users mid-session on the candidate at its rollback")
    retained_users: int
    retained: Number
    retained_ci95: Interval = Field(description="Wilson interval over users")
    satisfaction_end: Number
    satisfaction_end_se: Number
    satisfaction_end_ci95: Interval
    requests_after_rollback: int
    list_change: Number = Field(description="Mean 1 - overlap in the interrupted sessions")
    latency_ms: Number = Field(description="Mean latency in the interrupted sessions")


class Remembering(Block):
    users: int = Field(description="Users who sent at least one request")
    users_left: int = Field(description="Users who left for good")
    requests_not_sent: int
    return_decisions: int
    returned: int
    satisfaction_end: Number = Field(description="Mean satisfaction of users at the end")
    satisfaction_end_ci95: Interval
    versions: dict[VersionName, RememberingVersion]
    at_rollback: AtRollback | None = Field(
        description="Users caught mid-session on the candidate by its rollback"
    )


class Summary(Block):
    """``summary.json``, schema version 1 (keys are only ever added within a version)."""

    schema_version: Literal[1]
    scenario: ScenarioInfo
    outcome: str
    decision: Decision
    requests: Requests
    versions: dict[VersionName, Version]
    served: dict[VersionName, Served]
    cache: Cache
    rollout: Rollout
    routing: Routing
    releases: list[Release] | None
    decisions: list[DecisionRecord]
    windows: Windows
    segments: Segments
    churn: Churn
    off_policy: OpenBlock | None = Field(
        description="Off-policy estimates of every version on a replayed log's impressions"
    )
    drift: Drift | None
    fairness: Fairness | None = Field(
        default=None, description="Provider fairness by attributes.items.provider"
    )
    data: Data
    timing: Timing
    verdict: Verdict | None = None
    resources: Resources | None = None
    slos: dict[str, SloBlock] | None = Field(
        default=None, description="Declared SLOs: error budget and burn-rate alerts (by name)"
    )
    remembering: Remembering | None = Field(
        default=None,
        description='Users who remember (users.model = "remembering"): satisfaction, retention',
    )


def summary_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``summary.json`` (draft 2020-12, as pydantic writes it)."""
    schema = Summary.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "rollout-lab summary.json"
    return schema


# --- the tree of dotted paths -----------------------------------------------------------------

LEAF: typing.Final = "leaf"
OPEN: typing.Final = "open"
VERSIONS: typing.Final = "<version>"  # a key standing for every version name of the scenario


def _node(annotation: Any) -> Any:
    """The path tree below one field's annotation."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        models = [a for a in options if isinstance(a, type) and issubclass(a, BaseModel)]
        return _node(models[0]) if models else (_node(options[0]) if options else LEAF)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation.model_config.get("extra") == "allow":
            return OPEN
        return {
            (field.alias or name): _node(field.annotation)
            for name, field in annotation.model_fields.items()
        }
    if origin is dict:
        key, value = typing.get_args(annotation)
        # Keys that are data other than version names (segments, skip reasons): open.
        return {VERSIONS: _node(value)} if key is VersionName else OPEN
    return LEAF


def summary_tree() -> dict[str, Any]:
    """Every dotted path of the summary as a tree: a dict per table, :data:`LEAF` for a
    scalar or list, :data:`OPEN` below which anything goes, :data:`VERSIONS` for a key that
    is data (a version, segment or bucket name)."""
    tree = _node(Summary)
    assert isinstance(tree, dict)
    return tree
