"""Confidence calibration and rejection: the arithmetic, on NumPy arrays.

- `expected_calibration_error`: ECE with equal-width confidence bins (15 by
  default, as in Guo et al. 2017, "On Calibration of Modern Neural Networks"),
  over the `reliability_bins` a reliability diagram draws.
- `fit_temperature`: the one scalar ``T`` that minimises the negative
  log-likelihood of ``softmax(log(p) / T)`` on labelled data. Softmax is
  shift invariant, so the log-probabilities a softmax head outputs are its
  logits up to a constant per row.
- `threshold_for_precision` and `threshold_for_out_of_scope`: the two rules
  `tltf.calibrate_rejection` picks a rejection threshold with.
- `answer`: top class per row, or ``UNKNOWN_INDEX`` below the threshold.

`tltf.evaluation.rejection` applies these to models; exports apply
`answer`'s rule in their graphs (`tltf.export.plan.outputs_fn`).
"""

from __future__ import annotations

import numpy as np

UNKNOWN_INDEX = -1
UNKNOWN_NAME = "unknown"
ECE_BINS = 15
_FLOOR = 1e-37  # The smallest probability kept before log (float32 range).


def reliability_bins(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> dict[str, list[float]]:
    """Accuracy against confidence in equal-width bins (a reliability diagram).

    Rows are binned by their top probability into ``bins`` equal-width bins
    over [0, 1]: bin ``i`` holds confidences in ``(i / bins, (i + 1) / bins]``
    (0 goes to bin 0).

    Args:
        probabilities: ``(n, classes)`` probabilities.
        labels: ``(n,)`` integer labels.
        bins: Number of bins.

    Returns:
        ``{"confidence": [...], "accuracy": [...], "count": [...]}``: per bin
        the mean top probability, the share of correct answers (both 0 for an
        empty bin) and the number of rows.

    Example:
        >>> reliability_bins(np.array([[0.9, 0.1], [0.6, 0.4]]), [0, 1], bins=2)
        {'confidence': [0.0, 0.75], 'accuracy': [0.0, 0.5], 'count': [0, 2]}
    """
    probabilities = np.asarray(probabilities, "float64")
    labels = np.asarray(labels).reshape(-1)
    confidence = probabilities.max(axis=-1)
    correct = probabilities.argmax(axis=-1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    table: dict[str, list[float]] = {"confidence": [], "accuracy": [], "count": []}
    for i in range(bins):
        in_bin = which == i
        table["count"].append(int(in_bin.sum()))
        table["confidence"].append(
            float(confidence[in_bin].mean()) if in_bin.any() else 0.0
        )
        table["accuracy"].append(float(correct[in_bin].mean()) if in_bin.any() else 0.0)
    return table


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Expected calibration error of softmax outputs.

    ECE is the example-weighted mean of ``|accuracy - mean confidence|`` over
    the `reliability_bins`.

    Args:
        probabilities: ``(n, classes)`` probabilities.
        labels: ``(n,)`` integer labels.
        bins: Number of bins.

    Returns:
        The ECE, in [0, 1].

    Example:
        >>> expected_calibration_error(np.array([[0.9, 0.1], [0.6, 0.4]]), [0, 1])
        0.35
    """
    table = reliability_bins(probabilities, labels, bins)
    total = max(sum(table["count"]), 1)
    return float(
        sum(
            count / total * abs(accuracy - confidence)
            for count, accuracy, confidence in zip(
                table["count"], table["accuracy"], table["confidence"]
            )
        )
    )


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(p) / temperature)``, row by row (as `tltf.Head` does)."""
    logits = np.log(np.maximum(np.asarray(probabilities, "float64"), _FLOOR))
    return _softmax(logits / temperature)


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the NLL of ``labels``.

    A golden-section search over ``log T`` in [log 0.01, log 100]; the NLL of
    temperature scaling is convex in ``1 / T``, so the search finds its
    minimum within that range (to ~1e-4 in ``log T``). When every row's top
    class is its label, the NLL falls without end as ``T`` shrinks: the
    minimum is the range's edge, not a fit (at ``T = 0.02`` a model's
    probabilities are 0 or 1 to float precision, and a rejection threshold
    chosen on them rejects almost every new input), so ``T`` stays 1.

    Args:
        probabilities: ``(n, classes)`` softmax outputs (uncalibrated).
        labels: ``(n,)`` integer labels.

    Returns:
        ``T`` (> 1 softens over-confident outputs, < 1 sharpens them).
    """
    logits = np.log(np.maximum(np.asarray(probabilities, "float64"), _FLOOR))
    labels = np.asarray(labels, "int64").reshape(-1)
    rows = np.arange(len(labels))

    def nll(log_t: float) -> float:
        scaled = logits / np.exp(log_t)
        shifted = scaled - scaled.max(axis=-1, keepdims=True)
        log_z = np.log(np.exp(shifted).sum(axis=-1))
        return float(np.mean(log_z - shifted[rows, labels]))

    low, high = np.log(0.01), np.log(100.0)
    floor = low  # The search's lower edge, kept: the search moves `low`.
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(a), nll(b)
    while high - low > 1e-4:
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(b)
    best = (low + high) / 2.0
    if best < floor + 1e-3:  # Still falling at the edge: separable rows.
        return 1.0
    # Keep T = 1 unless scaling actually helps.
    return float(np.exp(best)) if nll(best) < nll(0.0) - 1e-9 else 1.0


def answer(probabilities: np.ndarray, threshold: float | None) -> np.ndarray:
    """Top class per row, or `UNKNOWN_INDEX` where its probability < threshold."""
    probabilities = np.asarray(probabilities)
    index = probabilities.argmax(axis=-1).astype("int64")
    if threshold is None:
        return index
    return np.where(probabilities.max(axis=-1) >= threshold, index, UNKNOWN_INDEX)


def threshold_for_precision(
    probabilities: np.ndarray, labels: np.ndarray, target_precision: float
) -> float | None:
    """The lowest threshold whose accepted answers reach ``target_precision``.

    Precision is the fraction of accepted rows (top probability >= the
    threshold) whose top class is the label. Candidates are the rows' top
    probabilities; the lowest candidate that reaches the target is returned.

    Returns:
        The threshold, or None when no threshold reaches the target.
    """
    confidence = np.asarray(probabilities).max(axis=-1)
    correct = np.asarray(probabilities).argmax(axis=-1) == np.asarray(labels)
    order = np.argsort(-confidence, kind="stable")
    confidence, correct = confidence[order], correct[order]
    # Accepting the k most confident rows (k = 1..n): precision of each.
    precision = np.cumsum(correct) / np.arange(1, len(correct) + 1)
    # Ties must be accepted together: only the last row of each tie counts.
    last_of_tie = np.append(confidence[1:] != confidence[:-1], True)
    reaching = np.flatnonzero((precision >= target_precision) & last_of_tie)
    if reaching.size == 0:
        return None
    return float(confidence[reaching.max()])


def threshold_for_out_of_scope(
    probabilities: np.ndarray,
    labels: np.ndarray,
    oos_probabilities: np.ndarray,
    max_accuracy_drop: float,
) -> float:
    """The threshold that rejects the most out-of-scope rows within a budget.

    In-scope accuracy counts a rejected row as wrong. Among thresholds whose
    in-scope accuracy is at most ``max_accuracy_drop`` below the accuracy
    without rejection, the one with the highest out-of-scope recall (share
    of ``oos_probabilities`` rows rejected) wins; ties go to the lowest
    threshold (the fewest in-scope rejections).

    Returns:
        The threshold (0.0 when no threshold above 0 fits the budget).
    """
    confidence = np.asarray(probabilities).max(axis=-1)
    correct = np.asarray(probabilities).argmax(axis=-1) == np.asarray(labels)
    oos_confidence = np.sort(np.asarray(oos_probabilities).max(axis=-1))
    candidates = np.unique(np.concatenate([[0.0], confidence, oos_confidence]))
    # In-scope accuracy and OOS recall at each candidate threshold t:
    # accepted rows have confidence >= t.
    by_confidence = np.argsort(confidence, kind="stable")
    sorted_conf, sorted_correct = confidence[by_confidence], correct[by_confidence]
    # Correct rows with confidence < t, for every t (via a prefix sum).
    correct_below = np.concatenate([[0], np.cumsum(sorted_correct)])
    lost = correct_below[np.searchsorted(sorted_conf, candidates, side="left")]
    accuracy = (correct.sum() - lost) / len(correct)
    recall = np.searchsorted(oos_confidence, candidates, side="left") / max(
        len(oos_confidence), 1
    )
    allowed = accuracy >= correct.mean() - max_accuracy_drop - 1e-12
    best = np.flatnonzero(allowed & (recall == recall[allowed].max()))
    return float(candidates[best.min()])


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)
