"""Knowledge distillation: shrink a fine-tuned model into a small student.

- `loss`: the documented loss mix (Hinton et al. 2015) and its checks.
- `Distiller`: a Keras model that trains a student on a frozen teacher.
- `data`: teacher outputs computed once (or per batch) and paired with data.
- `distill`: one call from teacher and student to a trained student.
- `distillation_report`: accuracy/F1, size and latency of both models.
"""

from tltf.training.distill.distiller import Distiller
from tltf.training.distill.loss import distillation_terms, validate_distillation
from tltf.training.distill.report import distillation_report
from tltf.training.distill.train import distill

__all__ = [
    "Distiller",
    "distill",
    "distillation_report",
    "distillation_terms",
    "validate_distillation",
]
