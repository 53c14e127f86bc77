"""Assessing a trained model: reports, calibration and rejection, plots.

- `report`: `evaluate` and its `EvaluationReport` (per-class and macro
  metrics, the confusion matrix; ``report.json`` and plots with
  ``output_dir``).
- `predictions`: the model's probabilities on labelled or unlabelled data,
  and the temperature and rejection threshold its head carries.
- `calibration`: the arithmetic on NumPy arrays: expected calibration error,
  temperature scaling, the two threshold rules, the "unknown" answer (which
  exports apply in their graphs).
- `rejection`: `calibrate_rejection` and `predict_classes`: calibrate a
  model, then let it answer "unknown".
- `plots`: the confusion matrix and the training curves (matplotlib is
  imported only to draw).

Imports run one way: report and rejection -> predictions -> `tltf.model`;
report and rejection -> calibration; report -> plots.
"""

from tltf.evaluation.rejection import (
    CalibrationResult,
    ClassPredictions,
    calibrate_rejection,
    predict_classes,
)
from tltf.evaluation.report import EvaluationReport, evaluate

__all__ = [
    "CalibrationResult",
    "ClassPredictions",
    "EvaluationReport",
    "calibrate_rejection",
    "evaluate",
    "predict_classes",
]
