"""SavedModel export for serving systems that have never heard of tltf.

- `tltf.export.saved_model`: `export_saved_model` (atomic write, verified in a
  fresh process) and `read_export_metadata`.
- `tltf.export.signatures`: the serving signatures (image bytes, pixels,
  strings, token ids) and their sample inputs.
- `tltf.export.plan`: what every modality's plan is made of: `Endpoint`,
  `ServingPlan` (and its metadata file), the outputs every signature returns.
- `tltf.export.litert`: `export_litert`, a ``.tflite`` file with a JSON
  sidecar, checked with the LiteRT interpreter.
- `tltf.export.quantize`: int8 copies of a model for export.
- `tltf.export.check`: the script that reloads an export with plain
  TensorFlow in a fresh process; it imports nothing from tltf.
"""

from tltf.export.litert import export_litert
from tltf.export.saved_model import export_saved_model, read_export_metadata

__all__ = ["export_litert", "export_saved_model", "read_export_metadata"]
