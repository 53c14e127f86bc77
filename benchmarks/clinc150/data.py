"""CLINC150 for `run.py` and `compact.py`: splits, few-shot draws, token lengths."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras_hub
import numpy as np
import tensorflow as tf


@dataclasses.dataclass
class Split:
    """Texts and integer labels."""

    texts: list[str]
    labels: np.ndarray

    def take(self, index: np.ndarray) -> Split:
        """The rows at ``index``, in that order."""
        return Split([self.texts[i] for i in index], self.labels[index])


@dataclasses.dataclass
class Clinc:
    """The in-scope splits and the intent names (label ``i`` is ``names[i]``)."""

    names: list[str]
    train: Split
    val: Split
    test: Split


def load_clinc(
    path: Path,
    intents: int | None = None,
    train_per_intent: int | None = None,
    eval_per_intent: int | None = None,
) -> Clinc:
    """Reads ``data_full.json``, keeps in-scope intents; shuffles train once.

    The file lists the training texts grouped by intent; they are shuffled
    once (seed 0) so that every arm sees the same order and no loader's
    shuffle buffer is defeated by sorted data.

    Args:
        path: ``data_full.json``.
        intents: Keep this many intents, evenly spread in sorted order
            (None: all 150).
        train_per_intent: Keep the first this many training texts per intent.
        eval_per_intent: The same for the validation and test splits.

    Returns:
        The splits, with labels indexing the sorted kept intent names.
    """
    raw = json.loads(Path(path).read_text())
    names = sorted({label for _, label in raw["train"]})
    if intents:
        step = len(names) // intents
        names = names[::step][:intents]
    index = {name: i for i, name in enumerate(names)}

    def split(key: str, per_intent: int | None) -> Split:
        rows = [(t, index[lab]) for t, lab in raw[key] if lab in index]
        if per_intent:
            rows = _first_per_label(rows, per_intent)
        return Split([t for t, _ in rows], np.array([y for _, y in rows], "int64"))

    train = split("train", train_per_intent)
    order = np.random.default_rng(0).permutation(len(train.texts))
    return Clinc(
        names=names,
        train=train.take(order),
        val=split("val", eval_per_intent),
        test=split("test", eval_per_intent),
    )


def _first_per_label(rows: list[tuple[str, int]], n: int) -> list[tuple[str, int]]:
    """The first ``n`` rows of every label."""
    seen: dict[int, int] = {}
    kept = []
    for text, label in rows:
        seen[label] = seen.get(label, 0) + 1
        if seen[label] <= n:
            kept.append((text, label))
    return kept


def few_shot(train: Split, shots: int, seed: int) -> Split:
    """``shots`` random texts per intent, in random order."""
    rng = np.random.default_rng(seed)
    index = np.concatenate(
        [
            rng.choice(np.flatnonzero(train.labels == c), shots, replace=False)
            for c in np.unique(train.labels)
        ]
    )
    return train.take(rng.permutation(index))


def token_lengths(texts: list[str], folder: str) -> dict[str, float]:
    """Percentiles of WordPiece tokens per text, with [CLS] and [SEP]."""
    tokenizer = keras_hub.models.BertTokenizer.from_preset(folder)
    lengths = np.array([len(ids) + 2 for ids in tokenizer(tf.constant(texts))])
    stats = {f"p{q}": float(np.percentile(lengths, q)) for q in (50, 90, 99, 99.9)}
    return {**stats, "max": float(lengths.max()), "texts": float(len(lengths))}


def out_of_scope(path: Path) -> dict[str, list[str]]:
    """The out-of-scope texts of ``data_full.json``: ``oos_val``, ``oos_test``."""
    raw = json.loads(Path(path).read_text())
    return {key: [text for text, _ in raw[key]] for key in ("oos_val", "oos_test")}
