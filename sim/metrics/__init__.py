"""Recommendation-quality metrics, computed vectorized after a run (DESIGN.md section 4).

Every function is pure: arrays or a polars request frame in, numbers or a small frame out;
randomness only through an explicit ``rng`` keyword.  Modules by question:

    engagement   CTR (Wilson CI), lift between versions, hit@K, sessions, segments
    calibration  ECE (equal-width, equal-mass), reliability diagram, calibration slope,
                 Steck's genre calibration KL, pseudo-genres
    diversity    intra-list diversity, coverage, Gini of exposure, novelty, popularity
    stability    Jaccard@K, RBO, churn on version change, seed-noise floor
    drift        PSI, two-sample KS
    offpolicy    replay, IPS and self-normalised IPS estimators, per position for slates

Mistakes in the input raise ``replay.errors.UserInputError``.
"""

from sim.metrics.calibration import (
    CalibrationSlope,
    ReliabilityDiagram,
    calibration_slope,
    expected_calibration_error,
    genre_calibration_kl,
    genre_shares,
    list_genre_distribution,
    pseudo_genres,
    reliability_diagram,
    steck_kl,
    user_genre_distribution,
)
from sim.metrics.diversity import (
    average_recommended_popularity,
    catalogue_coverage,
    exposure_counts,
    exposure_gini,
    genre_intra_list_diversity,
    gini,
    intra_list_diversity,
    novelty,
)
from sim.metrics.drift import KSResult, PSIResult, ks_two_sample, population_stability_index
from sim.metrics.engagement import (
    LiftEstimate,
    RateEstimate,
    SegmentDelta,
    abandonment_table,
    ctr,
    ctr_difference,
    ctr_table,
    hit_at_k,
    hit_rate_at_k,
    segment_ctr,
    session_table,
    wilson_interval,
    worst_segment_delta,
)
from sim.metrics.offpolicy import (
    OffPolicyEstimate,
    SlateEstimate,
    ips_estimate,
    replay_estimate,
    slate_estimates,
    snips_estimate,
)
from sim.metrics.stability import (
    NoiseFloorComparison,
    jaccard_at_k,
    rank_biased_overlap,
    relative_to_noise_floor,
    version_change_churn,
)

__all__ = [
    "CalibrationSlope",
    "KSResult",
    "LiftEstimate",
    "NoiseFloorComparison",
    "OffPolicyEstimate",
    "PSIResult",
    "RateEstimate",
    "ReliabilityDiagram",
    "SegmentDelta",
    "SlateEstimate",
    "abandonment_table",
    "average_recommended_popularity",
    "calibration_slope",
    "catalogue_coverage",
    "ctr",
    "ctr_difference",
    "ctr_table",
    "expected_calibration_error",
    "exposure_counts",
    "exposure_gini",
    "genre_calibration_kl",
    "genre_intra_list_diversity",
    "genre_shares",
    "gini",
    "hit_at_k",
    "hit_rate_at_k",
    "intra_list_diversity",
    "ips_estimate",
    "jaccard_at_k",
    "ks_two_sample",
    "list_genre_distribution",
    "novelty",
    "population_stability_index",
    "pseudo_genres",
    "rank_biased_overlap",
    "relative_to_noise_floor",
    "reliability_diagram",
    "replay_estimate",
    "segment_ctr",
    "session_table",
    "slate_estimates",
    "snips_estimate",
    "steck_kl",
    "user_genre_distribution",
    "version_change_churn",
    "wilson_interval",
    "worst_segment_delta",
]
