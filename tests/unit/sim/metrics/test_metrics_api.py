"""The public surface of ``sim.metrics``: declared in one place, documented with formulas."""

from __future__ import annotations

import inspect

import sim.metrics as metrics


def test_public_names_are_exported_and_sorted() -> None:
    assert metrics.__all__ == sorted(metrics.__all__)
    for name in metrics.__all__:
        assert hasattr(metrics, name), name


def test_every_public_function_documents_itself() -> None:
    for name in metrics.__all__:
        obj = getattr(metrics, name)
        doc = inspect.getdoc(obj) or ""
        assert len(doc) > 40, name


def test_randomness_only_through_an_rng_keyword() -> None:
    for name in metrics.__all__:
        obj = getattr(metrics, name)
        if not inspect.isfunction(obj):
            continue
        params = inspect.signature(obj).parameters
        if "rng" in params:
            assert params["rng"].kind is inspect.Parameter.KEYWORD_ONLY, name
