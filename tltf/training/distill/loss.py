"""The distillation loss: hard labels mixed with a frozen teacher's soft targets.

The loss follows Hinton et al. (2015), "Distilling the Knowledge in a Neural
Network", with the weighting convention of the keras.io "Knowledge
Distillation" example (``alpha`` weights the hard-label loss, ``1 - alpha``
the distillation loss). For one example with student probabilities ``p``,
teacher probabilities ``q``, integer label ``y`` (``-1`` when unlabeled) and
temperature ``T``::

    loss = alpha * [y >= 0] * CE(y, p) + (1 - alpha) * T**2 * KL(q_T || p_T)

    CE(y, p)      = -log p[y]
    q_T           = softmax(log q / T),  p_T = softmax(log p / T)
    KL(q_T||p_T)  = sum_c q_T[c] * (log q_T[c] - log p_T[c])

and a batch's loss is the (sample-weighted) sum of these over the batch
divided by the batch size, like Keras' ``"sum_over_batch_size"``. ``CE`` is
``keras.losses.sparse_categorical_crossentropy`` on the student's
probabilities, the loss a tltf model compiles with (it clips probabilities
to [1e-7, 1 - 1e-7], or uses the softmax's logits when it can see them).

tltf heads output probabilities, not logits. Temperature scaling needs
logits; ``log p`` equals the logits up to a constant per row, and softmax
ignores a constant per row, so ``softmax(log p / T)`` is exactly the
temperature-softened distribution. Probabilities are floored at 1e-30 before
the log (float32 softmax outputs can underflow to 0); only classes whose true
probability is below 1e-30 are affected.

The ``T**2`` factor keeps the gradients of the soft term the same size as
those of the hard term when ``T`` changes (Hinton et al., section 2). The
keras.io example leaves it out; ``keras.distillation.LogitsDistillation``
keeps it, as tltf does.
"""

from __future__ import annotations

import numbers
from typing import Any

import keras
import numpy as np
from keras import ops

from tltf.errors import ConfigError

DEFAULT_TEMPERATURE = 3.0
DEFAULT_ALPHA = 0.1
PROB_FLOOR = 1e-30


def validate_distillation(temperature: Any, alpha: Any) -> None:
    """Checks a temperature and an alpha.

    Args:
        temperature: Must be a number > 0.
        alpha: Must be a number in [0, 1].

    Raises:
        ConfigError: Either value is out of range or not a number.
    """
    if not _is_number(temperature) or not temperature > 0:
        raise ConfigError(
            "temperature must be a number > 0 (1 leaves the teacher's "
            "probabilities as they are; 2-10 softens them). "
            f"Received: temperature={temperature!r}"
        )
    if not _is_number(alpha) or not 0.0 <= alpha <= 1.0:
        raise ConfigError(
            "alpha must be a number in [0, 1]: the weight of the hard-label "
            "loss (1 - alpha weights the distillation loss; 0 learns from the "
            f"teacher only, 1 from the labels only). Received: alpha={alpha!r}"
        )


def distillation_terms(labels, teacher_probs, student_probs, temperature: float):
    """The two per-example terms of the distillation loss.

    Args:
        labels: Integer labels, shape ``(batch,)``; ``-1`` marks an example
            without a label (its hard term is 0).
        teacher_probs: Teacher probabilities, shape ``(batch, classes)``.
        student_probs: Student probabilities, shape ``(batch, classes)``.
        temperature: Softening temperature ``T`` > 0.

    Returns:
        ``(hard, soft)``, each of shape ``(batch,)``: the cross-entropy with
        the label (0 where unlabeled) and ``T**2 * KL(q_T || p_T)``.
    """
    labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
    student_probs = ops.cast(student_probs, "float32")
    teacher_probs = ops.cast(teacher_probs, "float32")
    labelled = labels >= 0
    hard = keras.losses.sparse_categorical_crossentropy(
        ops.where(labelled, labels, 0), student_probs
    )
    hard = ops.where(labelled, hard, ops.zeros_like(hard))
    log_q = ops.log_softmax(_log(teacher_probs) / temperature, axis=-1)
    log_p = ops.log_softmax(_log(student_probs) / temperature, axis=-1)
    kl = ops.sum(ops.exp(log_q) * (log_q - log_p), axis=-1)
    return hard, (temperature**2) * kl


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and (np.isfinite(value))
    )


def _log(probs):
    return ops.log(ops.maximum(probs, PROB_FLOOR))
