"""LoRA: fine-tune a large base cheaply by training low-rank adapters.

- `enable`: `enable_lora` puts adapters on the base's layers (attention
  query and value projections of BERT-family encoders; 1x1 and 3x3
  convolutions and dense layers of image bases), the base otherwise frozen.
- `adapter`: `save_adapter` and `load_adapter` (the adapters and the head,
  a small file).

`merge_lora` (an ordinary model, for export) is below both training and
export, in `tltf.lora_merge`.

Keras' own ``enable_lora`` on ``Dense``, ``EinsumDense``, ``Embedding`` and
convolutions does the math; tltf chooses the layers, keeps the rest of the
base frozen through staged unfreezing (see `tltf.training.freezing`) and
handles the optimizer, files and export.
"""

from tltf.training.lora.adapter import load_adapter, save_adapter
from tltf.training.lora.enable import default_targets, enable_lora, lora_summary

__all__ = [
    "default_targets",
    "enable_lora",
    "load_adapter",
    "lora_summary",
    "save_adapter",
]
