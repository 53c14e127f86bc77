"""The ``tltf`` command line: a thin layer over the public library.

``main`` parses the arguments (`tltf.cli.main`) before TensorFlow is
imported, merges a config file (`tltf.cli.options`), starts TensorFlow
quietly (`tltf.cli.startup`) and runs one subcommand (`tltf.cli.commands`;
what ``evaluate`` scores and where it writes: `tltf.cli.evaluation`;
``predict``: `tltf.cli.predict`).
"""

from tltf.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
