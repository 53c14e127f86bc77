"""Domain adaptation: train on a labelled source domain, adapt to an unlabelled target.

- `losses`: MCC, gradient reversal, CORAL and MMD distances, DANN's ramp.
- `methods`: MCC, DANN, CORAL and MMD behind one interface, with their
  domain classifiers.
- `recipes`: the optimizer each method trains with (MCC: TLlib's SGD).
- `step`: the train step while a model adapts (task loss + adaptation).
- `guard`: `CollapseGuard`, which stops an adaptation that overpowered the
  task and brings back its best epoch.
- `check`: do no harm: the label-free criterion (`target_balance`) that
  compares an adapted model with source-only training.
- `self_training`: class-balanced pseudo-labels for a second run (the
  default for two classes, after MMD).
- `adapt`: `adapt_domain`, the one call.
"""

from tltf.training.domain.adapt import adapt_domain
from tltf.training.domain.check import target_balance
from tltf.training.domain.guard import CollapseGuard
from tltf.training.domain.losses import (
    coral_distance,
    gaussian_kernels,
    mcc_loss,
    mmd_distance,
    ramp,
    reverse_gradient,
)
from tltf.training.domain.methods import METHODS, default_discriminator

__all__ = [
    "METHODS",
    "CollapseGuard",
    "adapt_domain",
    "coral_distance",
    "default_discriminator",
    "gaussian_kernels",
    "mcc_loss",
    "mmd_distance",
    "ramp",
    "reverse_gradient",
    "target_balance",
]
