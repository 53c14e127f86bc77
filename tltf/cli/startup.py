"""Starting TensorFlow quietly for the command line.

TensorFlow's native libraries print start-up lines to the process's stderr
(oneDNN, CUDA drivers, CPU instructions, ``absl::InitializeLog``), some of
them before ``TF_CPP_MIN_LOG_LEVEL`` is read. The command line imports
TensorFlow with the native stderr caught in a file, drops the lines in the
native log format and passes everything else on; ``--debug`` shows it all.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

#: Native log lines: glog/absl ``I0000 00:00:...`` lines and their companions.
_NATIVE_LOG = re.compile(
    r"^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\]"
    r"|WARNING: All log messages before absl::InitializeLog\(\)"
    r"|WARNING: Logging before InitGoogleLogging\(\)"
    r"|To enable the following instructions: )"
)


def quiet_environment() -> None:
    """Asks TensorFlow for errors only, unless the user set the level."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@contextlib.contextmanager
def native_stderr_filtered() -> Iterator[None]:
    """Catches what native code writes to stderr; passes on non-log lines.

    Python code writing to ``sys.stderr`` is caught too (it shares file
    descriptor 2) and passed on in order, so nothing but the native log
    lines is lost.
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # No stderr descriptor (embedded interpreters).
        yield
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            _pass_on(caught.read().decode(errors="replace"))


def _pass_on(text: str) -> None:
    kept = [line for line in text.splitlines() if not _NATIVE_LOG.match(line)]
    if kept:
        sys.stderr.write("\n".join(kept) + "\n")
        sys.stderr.flush()


def import_commands(debug: bool):
    """Imports the subcommands (and with them TensorFlow), quietly unless debug.

    Args:
        debug: Show TensorFlow's start-up lines as they come.

    Returns:
        The `tltf.cli.commands` module.
    """
    if debug or "tensorflow" in sys.modules:
        from tltf.cli import commands

        return commands
    quiet_environment()
    with native_stderr_filtered():
        import tensorflow as tf

        from tltf.cli import commands

        # Device set-up logs too (CUDA on a machine without a GPU).
        tf.config.list_logical_devices()
    return commands
