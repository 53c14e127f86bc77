"""Everything a user needs, imported by name: the public API behind `tltf`.

``import tltf`` re-exports these names (see `tltf/__init__.py`). They live
here, not in ``__init__``, so that the ``tltf`` command can parse its
arguments before any of them (and TensorFlow) is imported.
"""

# ruff: noqa: F401
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
from tltf.evaluation import (
    CalibrationResult,
    ClassPredictions,
    EvaluationReport,
    calibrate_rejection,
    evaluate,
    predict_classes,
)
from tltf.export import export_litert, export_saved_model, read_export_metadata
from tltf.heads import Head
from tltf.lora_merge import merge_lora
from tltf.metrics import MacroF1, MacroPrecision, MacroRecall
from tltf.model import TransferModel
from tltf.training.distill import Distiller, distill, distillation_report
from tltf.training.domain import adapt_domain
from tltf.training.feature_cache import (
    FeatureCache,
    can_cache_features,
    compute_features,
    fit_frozen_head,
)
from tltf.training.freezing import (
    freeze_backbone,
    set_trainable_groups,
    trainable_groups,
    unfreeze_backbone,
)
from tltf.training.lora import enable_lora, load_adapter, save_adapter
from tltf.training.lr_finder import LRFinderResult, find_learning_rate
from tltf.training.recipes import fine_tune
from tltf.training.tuning import (
    TransferHyperModel,
    TransferTuner,
    TrialRecord,
    TuningResult,
    tune_learning_rate,
)
from tltf.training.unfreezing import StagedUnfreezing
