"""The entry point of the ``tltf`` command line.

``main`` parses the arguments (`tltf.cli.subcommands`, `tltf.cli.flags`),
merges a config file (`tltf.cli.config`) and checks what needs no model
(`tltf.cli.checks`), all before TensorFlow is imported, so a wrong command
line fails within a second. Then it starts TensorFlow quietly
(`tltf.cli.startup`) and runs the subcommand's handler.

Bad input ends with one line that says what to do: exit status 2 when the
command line is wrong (nothing ran), 1 when the run failed; ``--debug`` shows
the traceback instead.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tltf.cli.config import merge_config
from tltf.cli.parsing import ArgumentsError
from tltf.cli.subcommands import BY_NAME, build_parsers
from tltf.errors import TltfError

#: Exit status when the command line is wrong (as argparse's own errors).
USAGE_ERROR = 2
#: Exit status when the run failed.
RUN_ERROR = 1


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``tltf`` with ``argv`` (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 when the run failed, 2 when the
        command line is wrong, 130 when interrupted.
    """
    parser, parsers = build_parsers()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        parser.print_help()
        return USAGE_ERROR
    if extra:  # Said by the subcommand's parser, which knows its flags.
        parsers[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    command = BY_NAME[args.command]
    try:
        options = merge_config(args, parsers[args.command])
        command.check(options)
        from tltf.cli.startup import run_handler

        return run_handler(command.handler, options, args.debug)
    except ArgumentsError as err:
        if args.debug:
            raise
        _fail(args.command, str(err))
        return USAGE_ERROR
    except TltfError as err:
        if args.debug:
            raise
        _fail(args.command, f"{err} (--debug shows the traceback)")
    except KeyboardInterrupt:
        print(f"tltf {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - one line unless --debug.
        if args.debug:
            raise
        _fail(
            args.command, f"{type(err).__name__}: {err} (--debug shows the traceback)"
        )
    return RUN_ERROR


def _fail(command: str, message: str) -> None:
    line = " ".join(message.split())
    print(f"tltf {command}: error: {line}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
