"""Frozen-base feature caching: the base runs once, the head trains on its output.

- `safety`: when cached features equal what ``fit`` computes (`cache_blockers`).
- `compute`: running the base once over a dataset (`compute_features`) and the
  keys that name a feature set.
- `store`: where feature sets are kept (`FeatureCache`: memory or disk).
- `fit_head`: `fit_frozen_head`, ``model.fit`` for a frozen base.
- `head_compile`, `head_loop`: how the head model is compiled like the whole
  model, and the lean in-memory loop that trains it.
"""

from tltf.training.feature_cache.compute import (
    FeatureSet,
    base_key,
    compute_features,
    feature_key,
    feature_set,
)
from tltf.training.feature_cache.fit_head import (
    fit_frozen_head,
    fit_head_on_features,
    head_model,
    until_converged,
)
from tltf.training.feature_cache.safety import cache_blockers, can_cache_features
from tltf.training.feature_cache.store import FeatureCache, default_cache

__all__ = [
    "FeatureCache",
    "FeatureSet",
    "base_key",
    "cache_blockers",
    "can_cache_features",
    "compute_features",
    "default_cache",
    "feature_key",
    "feature_set",
    "fit_frozen_head",
    "fit_head_on_features",
    "head_model",
    "until_converged",
]
