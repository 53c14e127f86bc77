"""tltf: transfer learning for Keras 3 on TensorFlow.

The data flows one way: data -> backbone -> head -> schedule -> distribute ->
export. Everything a user needs is re-exported here.
"""

from tltf import data, distribute
from tltf.backbones import (
    Backbone,
    BackboneSpec,
    HubLayer,
    Preprocess,
    get_backbone,
    list_backbones,
)
from tltf.builders import (
    build_image_classifier,
    build_text_classifier,
    compile_model,
)
from tltf.distribute import (
    WorkerBackupAndRestore,
    distribute_dataset,
    fault_tolerance_callbacks,
    get_strategy,
    global_batch_size,
    strategy_scope,
)
from tltf.errors import (
    ConfigError,
    DataError,
    ExportError,
    MissingWeightsError,
    TltfError,
)
from tltf.evaluation import EvaluationReport, evaluate
from tltf.export import export_saved_model, read_export_metadata
from tltf.heads import Head
from tltf.metrics import MacroF1, MacroPrecision, MacroRecall
from tltf.training.caching import (
    FeatureCache,
    can_cache_features,
    compute_features,
    fit_frozen_head,
)
from tltf.training.distill import Distiller, distill, distillation_report
from tltf.training.freezing import (
    freeze_backbone,
    set_trainable_groups,
    trainable_groups,
    unfreeze_backbone,
)
from tltf.training.lr_finder import LRFinderResult, find_learning_rate
from tltf.training.lr_search import TrialRecord, TuningResult, tune_learning_rate
from tltf.training.recipes import fine_tune
from tltf.training.tuning import TransferHyperModel, TransferTuner
from tltf.training.unfreezing import StagedUnfreezing

__version__ = "0.1.0"

__all__ = [
    "Backbone",
    "BackboneSpec",
    "ConfigError",
    "DataError",
    "Distiller",
    "EvaluationReport",
    "ExportError",
    "FeatureCache",
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
    "TransferTuner",
    "TrialRecord",
    "TuningResult",
    "WorkerBackupAndRestore",
    "build_image_classifier",
    "build_text_classifier",
    "can_cache_features",
    "compile_model",
    "compute_features",
    "data",
    "distill",
    "distillation_report",
    "distribute",
    "distribute_dataset",
    "evaluate",
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
    "read_export_metadata",
    "set_trainable_groups",
    "strategy_scope",
    "trainable_groups",
    "tune_learning_rate",
    "unfreeze_backbone",
]
