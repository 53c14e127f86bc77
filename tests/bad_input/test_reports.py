# ruff: noqa: E501 (one row per line)
"""Bad input to what reports on training (`find_learning_rate`'s
`LRFinderResult`, `tune_learning_rate`'s `TuningResult` and `TrialRecord`,
`TransferHyperModel`, `TransferTuner`, `distillation_report`) and their
plots: a clear error or a correct result. Tiny conv models, 32x32."""

from __future__ import annotations

import functools
from pathlib import Path

import keras_tuner as kt
import numpy as np
import pytest

import tltf
from tests.bad_input.rows import Raises, Row, check, params, scratch, trained_tiny_model
from tests.support.helpers import TINY_GROUPS, build_tiny_model, tiny_base
from tltf.errors import ConfigError, DataError
from tltf.evaluation import plots

rng = np.random.default_rng(0)
Y = np.arange(12) % 3
X = rng.uniform(0, 60, (12, 32, 32, 3)).astype("float32")
X[np.arange(12), ..., Y] += 150.0


def _root() -> Path:
    return scratch("reports")


def _hypermodel(**kwargs):
    kwargs.setdefault("weights", None)
    return tltf.TransferHyperModel(
        tiny_base(), 3, preprocessing="unit", layer_groups=TINY_GROUPS, **kwargs
    )


@functools.cache
@functools.cache
def _search():
    """One small search that the tuning rows share (it takes most of a minute)."""
    return tltf.tune_learning_rate(
        _hypermodel(),
        (X, Y),
        max_trials=2,
        epochs=1,
        oracle="random",
        directory=_root() / "tuning",
        seed=1,
        verbose=0,
    )


def _search_result(result) -> None:
    assert isinstance(result, tltf.TuningResult)
    assert isinstance(result.tuner, tltf.TransferTuner)
    assert len(result.trials) == 2 and all(
        isinstance(t, tltf.TrialRecord) for t in result.trials
    )
    assert 1e-5 <= result.best_learning_rate <= 1e-1


def _is_png(path) -> None:
    assert Path(path).read_bytes()[:4] == b"\x89PNG"


def _lr_result(result) -> None:
    assert isinstance(result, tltf.LRFinderResult)
    assert len(result.losses) == len(result.learning_rates) <= 10
    assert result.learning_rates[0] < result.learning_rates[-1]


def _model_of(base):
    return tltf.build_image_classifier(
        base, 3, preprocessing="unit", layer_groups=TINY_GROUPS
    )


@functools.cache
def _teacher():
    return trained_tiny_model(X, Y, epochs=3)


@functools.cache
def _report():
    return tltf.distillation_report(
        _teacher(), build_tiny_model(), (X, Y), latency_runs=1, measure_size=False
    )


def _report_keys(report) -> None:
    assert {"teacher", "student", "agreement", "ratios"} <= set(report)
    assert 0.0 <= report["agreement"] <= 1.0
    assert report["teacher"]["params"] == report["student"]["params"]


@functools.cache
def _a_finder_result():
    """A ten-step sweep without a plot, shared by the plot rows."""
    return tltf.find_learning_rate(
        build_tiny_model(), (X, Y), num_steps=10, plot_path=None
    )


# fmt: off
ROWS = [
    Row("find_learning_rate", "ten steps", lambda: tltf.find_learning_rate(build_tiny_model(), (X, Y), num_steps=10, batch_size=4, plot_path=None), _lr_result),
    Row("LRFinderResult", "its plot", lambda: tltf.find_learning_rate(build_tiny_model(), (X, Y), num_steps=10, batch_size=4, plot_path=_root() / "lr.png").plot_path, _is_png),
    Row("TransferHyperModel", "an unknown backbone", lambda: tltf.TransferHyperModel("keras:nonet", 3), Raises(ConfigError, "keras:nonet")),
    Row("TransferHyperModel", "num_classes 0", lambda: tltf.TransferHyperModel(tiny_base(), 0), Raises(ConfigError, "num_classes")),
    Row("TransferHyperModel", "a negative rate range", lambda: _hypermodel(head_learning_rate=(-1e-3, 1e-1)), Raises(ConfigError, "head_learning_rate")),
    Row("TransferHyperModel", "a range low above high", lambda: _hypermodel(head_learning_rate=(1e-1, 1e-3)), Raises(ConfigError, "head_learning_rate")),
    Row("TransferHyperModel", "no head rate", lambda: _hypermodel(head_learning_rate=None), Raises(ConfigError, "head_learning_rate cannot be None")),
    Row("TransferTuner", "not a hypermodel", lambda: tltf.TransferTuner(kt.oracles.RandomSearchOracle("loss", 1), hypermodel="resnet"), Raises(ConfigError, "TransferHyperModel")),
    Row("tune_learning_rate", "two random trials", _search, _search_result),
    Row("TuningResult", "its plot", lambda: plots.tuning_trials(_search(), _root() / "trials.png"), _is_png),
    Row("TrialRecord", "scores of finished trials", lambda: [t.score for t in _search().trials], lambda scores: all(np.isfinite(s) for s in scores) or pytest.fail(str(scores))),
    Row("distillation_report", "latency_runs 0", lambda: tltf.distillation_report(_teacher(), build_tiny_model(), (X, Y), latency_runs=0), Raises(ConfigError, "latency_runs must be an integer >= 1")),
    Row("distillation_report", "only unlabelled examples", lambda: tltf.distillation_report(_teacher(), build_tiny_model(), (X, np.full(12, -1)), latency_runs=1, measure_size=False), Raises(DataError, "no labelled examples")),
    Row("distillation_report", "a student of other inputs", lambda: tltf.distillation_report(_teacher(), _model_of(tiny_base((40, 40, 3))), (X, Y), latency_runs=1, measure_size=False), Raises(ConfigError, "must take the same inputs")),
    Row("distillation_report", "a teacher and an untrained student", _report, _report_keys),
    Row("distillation_report", "its plot", lambda: plots.distillation_comparison(_report(), _root() / "distill.png"), _is_png),
    Row("LRFinderResult", "plot(None)", lambda: _a_finder_result().plot(None), Raises(ConfigError, "path must be a path")),
    Row("LRFinderResult", "plot into a folder", lambda: _a_finder_result().plot(_root()), Raises(ConfigError, "is a folder; pass a file path")),
]
# fmt: on


@pytest.mark.parametrize("row", params(ROWS))
def test_report(row: Row) -> None:
    check(row)
