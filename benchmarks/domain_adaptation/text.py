"""Amazon reviews in four domains, as frozen MiniLM features: 12 text shifts.

Each domain (``../shared/datasets/amazon-reviews``, Blitzer et al. 2007:
1,000 positive and 1,000 negative reviews) is split once, per label, with
``default_rng(0)``: test 400 (200 + 200), val 200, train 1,400. The text of a
review is its title, ". ", then its body (HTML entities decoded).

The offline all-MiniLM-L6-v2 (tltf's ``"kerashub:all-minilm-l6-v2"``,
sequence length 128, mean pooling over the non-padding tokens) encodes every
review once, through ``tltf.build_text_classifier``'s own base and pooling;
the features are cached in ``CACHE`` (``--encode`` recomputes them: about
an hour on one thread). The adapted model is a head on those 384 features
(the base frozen, as `adapt_domain` adapts a head on a frozen MiniLM).
"""

from __future__ import annotations

import html
import re
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import common
from benchmarks.domain_adaptation.shifts import Domain, Part, Task

ROOT = common.DATASETS / "amazon-reviews"
DOMAINS = ("books", "dvd", "electronics", "kitchen")
SHORT = {"books": "B", "dvd": "D", "electronics": "E", "kitchen": "K"}
PAIRS = [(s, t) for s in DOMAINS for t in DOMAINS if s != t]
N_TEST, N_VAL = 400, 200
SEQUENCE_LENGTH = 128
CACHE = Path(tempfile.gettempdir()) / "tltf-benchmarks" / "amazon-minilm"
_REVIEW = re.compile(r"<review>(.*?)</review>", re.S)


def _field(block: str, name: str) -> str:
    found = re.search(rf"<{name}>(.*?)</{name}>", block, re.S)
    return " ".join(found.group(1).split()) if found else ""


def read_domain(domain: str) -> tuple[list[str], np.ndarray]:
    """The reviews (title. body) and labels (0 negative, 1 positive)."""
    texts, labels = [], []
    for label, name in ((0, "negative.review"), (1, "positive.review")):
        raw = (ROOT / domain / name).read_text(encoding="utf-8", errors="replace")
        for block in _REVIEW.findall(raw):
            title, body = _field(block, "title"), _field(block, "review_text")
            texts.append(html.unescape(f"{title}. {body}" if title else body))
            labels.append(label)
    return texts, np.array(labels, np.int64)


def split_indices(labels: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Train / val / test indices, the same share of each label in each."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for c in (0, 1):
        idx = rng.permutation(np.flatnonzero(labels == c))
        nt, nv = N_TEST // 2, N_VAL // 2
        parts["test"] += list(idx[:nt])
        parts["val"] += list(idx[nt : nt + nv])
        parts["train"] += list(idx[nt + nv :])
    return {k: np.sort(np.array(v)) for k, v in parts.items()}


def encode(texts: list[str]) -> np.ndarray:
    """``(n, 384)`` pooled MiniLM features, through tltf's own text model."""
    import tltf
    from tltf.model import parts_of

    model = tltf.build_text_classifier(
        "kerashub:all-minilm-l6-v2", 2, sequence_length=SEQUENCE_LENGTH
    )
    parts = parts_of(model)
    out = []
    for i in range(0, len(texts), 32):
        batch = np.array(texts[i : i + 32], dtype=object)
        out.append(np.asarray(parts.pooled_features(batch, training=False)))
    return np.concatenate(out).astype("float32")


def features(domain: str, recompute: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A domain's features and labels, from the cache or encoded now."""
    path = CACHE / f"{domain}_L{SEQUENCE_LENGTH}.npz"
    texts, labels = read_domain(domain)
    if path.exists() and not recompute:
        cached = np.load(path)
        if np.array_equal(cached["labels"], labels):
            return cached["pooled"], labels
    pooled = encode(texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, pooled=pooled, labels=labels)
    return pooled, labels


def text_tasks(limit: int | None = None) -> list[Task]:
    """The 12 pairs (``limit``: the first pairs and examples, smoke runs)."""
    domains = {}
    for name in DOMAINS:
        x, y = features(name)
        idx = split_indices(y)
        domains[name] = Domain(
            *(Part(x[idx[s]], y[idx[s]]) for s in ("train", "val", "test"))
        )
    tasks = [
        Task(SHORT[s] + SHORT[t], domains[s], domains[t], f"{s} -> {t}")
        for s, t in PAIRS
    ]
    return tasks[:2] if limit else tasks
