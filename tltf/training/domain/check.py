"""Do no harm: is the adapted model better than training on the source alone?

No target label is available, so the comparison uses a criterion computed
on the target inputs: `target_balance`, how evenly the model's predicted
classes spread over the target data (the entropy of the predicted-class
shares, over its largest value ``log k``). Adaptation that goes wrong
collapses the target predictions onto a few classes (entropy minimisation,
MCC on a binary task that drifts to one class, a collapsed alignment); a
working one spreads them as the classes are spread. In the trials behind
``benchmarks/domain_adaptation`` it ranked an adapted run below source-only
training exactly when it scored below it on 27 of 27 image runs (MCC, DANN,
mean teacher, entropy minimisation on three digit shifts) and on 74% of 180
text runs (12 review pairs), where source validation accuracy, prediction
entropy, information maximisation, DEV and reverse validation were near
chance. It assumes the target classes are not far from balanced: on a
target where one class dominates, pass ``check=False`` and judge on
labelled target data.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import keras
import numpy as np

from tltf.data.inputs import as_unlabeled

#: The name the run records for the criterion.
CRITERION = "target_balance"
#: Target inputs the criterion reads at most (the first ones).
MAX_EXAMPLES = 4096


def target_balance(model: keras.Model, target: Any, batch_size: int) -> float:
    """Entropy of the model's predicted-class shares on the target, in [0, 1].

    1 when every class is predicted equally often, 0 when one class takes
    every example. Reads at most `MAX_EXAMPLES` target inputs.

    Args:
        model: A multiclass classifier.
        target: Unlabelled target inputs in any form `adapt_domain` takes.
        batch_size: Batch size for arrays and lists.

    Returns:
        The normalised entropy.
    """
    ds = as_unlabeled(target, batch_size, what="target", shuffle=False)
    batches = max(1, -(-MAX_EXAMPLES // max(int(batch_size), 1)))
    probabilities = model.predict(ds.take(batches), verbose=0)
    counts = np.bincount(
        np.asarray(probabilities).argmax(-1), minlength=probabilities.shape[-1]
    )
    if counts.size < 2:
        return 1.0
    shares = counts[counts > 0] / counts.sum()
    return float(-(shares * np.log(shares)).sum() / math.log(counts.size))


@dataclasses.dataclass
class Verdict:
    """What `adapt_domain` compared and which model it kept.

    Attributes:
        criterion: `CRITERION`.
        source_only: The criterion for training on the source alone.
        adapted: The criterion per adaptation weight tried (``{weight:
            value}``; None for a run that collapsed).
        kept: ``"adapted"`` or ``"source_only"``.
        weight: The weight of the kept adaptation (None if source only).
        reason: One sentence on why.
    """

    criterion: str
    source_only: float | None
    adapted: dict[float, float | None]
    kept: str
    weight: float | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (weights as strings)."""
        out = dataclasses.asdict(self)
        out["adapted"] = {f"{w:g}": v for w, v in self.adapted.items()}
        return out


def judge(source_only: float | None, adapted: dict[float, float | None]) -> Verdict:
    """Keeps the adapted run the criterion ranks highest, unless source only wins.

    Args:
        source_only: The criterion for the source-only run (None: none ran).
        adapted: The criterion per weight; None for a run that collapsed.

    Returns:
        The `Verdict`; ties go to the adapted model.
    """

    def verdict(weight: float | None, reason: str) -> Verdict:
        kept = "source_only" if weight is None else "adapted"
        return Verdict(CRITERION, source_only, adapted, kept, weight, reason)

    healthy = {w: v for w, v in adapted.items() if v is not None}
    if not healthy:
        return verdict(None, "every adaptation run collapsed")
    weight = max(healthy, key=lambda w: healthy[w])
    best = healthy[weight]
    if source_only is not None and best < source_only:
        return verdict(
            None,
            f"the target predictions of the adapted model are less balanced "
            f"({CRITERION} {best:.3f}) than those of source-only training "
            f"({source_only:.3f})",
        )
    why = (
        f"{CRITERION} {best:.3f}"
        + ("" if source_only is None else f" against {source_only:.3f} source only")
        + (f", the highest of weights {sorted(healthy)}" if len(healthy) > 1 else "")
    )
    return verdict(weight, why)
