"""tltf: transfer learning for Keras 3 on TensorFlow.

A model's data flows one way: data -> backbone -> head -> schedule (freeze /
unfreeze / tune) -> export, and `tltf.evaluation` assesses the result.
Imports run the same way, never upwards: the builders (`tltf.builders`,
the model and its parts) stand on data, backbones and heads; training and
export stand on the builders; `tltf.distribute`, the strategy scope that
building, training and export all enter, stands below every one of them.
Everything a user needs is re-exported here (from `tltf._public`).

``import tltf`` imports the whole library, so every tltf layer is registered
with Keras before a saved model is loaded. The one exception is the process of
the ``tltf`` command, which parses its arguments first and loads the library
(and TensorFlow) only when a subcommand runs.
"""

# ruff: noqa: F405 (the names of __all__ come from tltf._public)
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tltf.errors import (
    ConfigError,
    DataError,
    ExportError,
    FileError,
    MissingWeightsError,
    TltfError,
    TrainingError,
)

if TYPE_CHECKING:  # The names `_load` adds, for type checkers and IDEs.
    from tltf._public import *  # noqa: F403

__version__ = "0.1.0"

__all__ = [
    "Backbone",
    "BackboneSpec",
    "CalibrationResult",
    "ClassPredictions",
    "ConfigError",
    "DataError",
    "Distiller",
    "EvaluationReport",
    "ExportError",
    "FeatureCache",
    "FileError",
    "Head",
    "HubLayer",
    "LRFinderResult",
    "MacroF1",
    "MacroPrecision",
    "MacroRecall",
    "MissingWeightsError",
    "Preprocess",
    "StagedUnfreezing",
    "TltfError",
    "TransferHyperModel",
    "TransferModel",
    "TransferTuner",
    "TrainingError",
    "TrialRecord",
    "TuningResult",
    "WorkerBackupAndRestore",
    "adapt_domain",
    "build_image_classifier",
    "build_text_classifier",
    "calibrate_rejection",
    "can_cache_features",
    "compile_model",
    "compute_features",
    "data",
    "distill",
    "distillation_report",
    "distribute",
    "distribute_dataset",
    "enable_lora",
    "evaluate",
    "export_litert",
    "export_saved_model",
    "fault_tolerance_callbacks",
    "find_learning_rate",
    "fine_tune",
    "fit_frozen_head",
    "freeze_backbone",
    "get_backbone",
    "get_strategy",
    "global_batch_size",
    "list_backbones",
    "load_adapter",
    "merge_lora",
    "predict_classes",
    "read_export_metadata",
    "save_adapter",
    "set_trainable_groups",
    "strategy_scope",
    "trainable_groups",
    "tune_learning_rate",
    "unfreeze_backbone",
]

_load_started = False


def _load() -> None:
    """Imports the public API into this module (once)."""
    global _load_started
    if _load_started:
        return
    _load_started = True
    from tltf import _public

    missing = [name for name in __all__ if name not in globals()]
    globals().update({name: getattr(_public, name) for name in missing})


def __getattr__(name: str) -> Any:
    """Loads the library on first use in the ``tltf`` command's process."""
    if name in __all__ and not _load_started:  # Only names not yet imported.
        _load()
        return globals()[name]
    raise AttributeError(f"module 'tltf' has no attribute {name!r}")


def _is_command_line() -> bool:
    """Whether this process is the ``tltf`` command (its console script, or
    ``python -m tltf.cli``)."""
    if sys.argv and Path(sys.argv[0]).stem == "tltf":
        return True
    argv = getattr(sys, "orig_argv", [])
    return any(a == "-m" and b == "tltf.cli" for a, b in zip(argv, argv[1:]))


if not _is_command_line():
    _load()
