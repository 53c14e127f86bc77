"""The ``tltf`` command line: a thin layer over the public library.

``main`` parses the arguments (`tltf.cli.main`, values by
`tltf.cli.parsing`) before TensorFlow is imported, merges a config file
(`tltf.cli.options`), starts TensorFlow quietly (`tltf.cli.startup`) and runs
one subcommand (`tltf.cli.commands`; what ``evaluate`` scores and where it
writes: `tltf.cli.evaluation`; ``calibrate``: `tltf.cli.calibrate`;
``predict``: `tltf.cli.predict`). Imports run one way: main -> startup ->
commands -> predict -> options -> parsing, and commands -> calibrate ->
evaluation (commands and calibrate also import options). The run folder's
layout is the library's (`tltf.runs`); the library never imports the command
line.
"""

from tltf.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
