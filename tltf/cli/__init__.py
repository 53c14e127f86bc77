"""The ``tltf`` command line: a thin layer over the public library.

``main`` parses the arguments (`tltf.cli.main`), merges a config file
(`tltf.cli.options`) and runs one subcommand (`tltf.cli.commands`).
"""

from tltf.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
