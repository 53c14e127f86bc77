"""SavedModel export for serving systems that have never heard of tltf.

- `tltf.export.saved_model`: `export_saved_model` (atomic write, verified in a
  fresh process) and `read_export_metadata`.
- `tltf.export.signatures`: the serving signatures (image bytes, pixels,
  strings, token ids) and their sample inputs.
- `tltf.export.check`: the script that reloads an export with plain
  TensorFlow in a fresh process; it imports nothing from tltf.
"""

from tltf.export.saved_model import export_saved_model, read_export_metadata

__all__ = ["export_saved_model", "read_export_metadata"]
