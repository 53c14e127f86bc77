"""The ``tltf`` command line: a thin layer over the public library.

Before TensorFlow loads, so that a wrong command line fails within a second:

- `main`: the entry point (``tltf``, ``python -m tltf.cli``);
- `subcommands`: one row per subcommand (name, help, examples, flags, checks,
  handler) and the parser built from them;
- `flags`: the flags of each subcommand and the groups they share;
- `parsing`: flag and config values from text (numbers, sizes, schedules),
  and `ArgumentsError`;
- `config`: a config file merged under the flags;
- `checks`: what depends on several flags or on the disk;
- `outputs`: the overwrite policy.

Then `startup` imports the subcommand's handler with TensorFlow's native
noise filtered out, and the handler runs:

- `training`: train, adapt, tune, demo, list-backbones;
- `evaluating`: evaluate; `calibrate`: calibrate; `exporting`: export;
  `predict`: predict;
- `loading`: data, models and out-of-scope examples from the options;
- `held_out`: which split evaluate and calibrate score, and where reports go.

Imports run one way: main -> subcommands -> flags, checks -> outputs ->
parsing; main -> config -> parsing; main -> startup -> (a handler) ->
held_out -> loading, checks. The handlers import the library at their top;
the modules before startup import none of it but `tltf.runs` (the run
folder's layout), `tltf.errors` and the pure schedule syntax. The library
never imports the command line.
"""

from tltf.cli.main import main
from tltf.cli.subcommands import build_parser

__all__ = ["build_parser", "main"]
