"""Training a tltf model: one sub-package or module per concept.

- `freezing`: freeze and unfreeze the base by named layer group.
- `feature_cache/`: the frozen base runs once; the head trains on its output
  (`fit_frozen_head`).
- `unfreezing/`: the schedule, per-group learning rates, `StagedUnfreezing`.
- `recipes`: `fine_tune`, the frozen-then-unfrozen recipe in one call.
- `contrastive`: the supervised contrastive stage `fine_tune` runs first on
  text classifiers (4 passes with few examples per class, 1 with many).
- `lora/`: LoRA adapters on the base (`enable_lora`), adapter files, merging.
- `lr_finder`: the learning-rate range test (`find_learning_rate`).
- `tuning/`: learning-rate search with KerasTuner (`tune_learning_rate`).
- `distill/`: knowledge distillation into a small student.
- `domain/`: domain adaptation to an unlabelled target domain (`adapt_domain`).
- `fitting`: the plain ``fit`` call and history merging they share.
"""
