"""Running a subcommand's handler with TensorFlow's native noise filtered out.

TensorFlow's native libraries write to the process's stderr: start-up lines
(oneDNN, CUDA drivers, CPU instructions, ``absl::InitializeLog``), some of
them before ``TF_CPP_MIN_LOG_LEVEL`` is read and again when devices are set
up, and the image decoders' warnings (libjpeg's "Corrupt JPEG data: ...")
for files tltf already reports itself. While a handler runs, file descriptor
2 is a pipe read by a thread that drops those lines and passes every other
line on as it comes (Python's own warnings and errors included, and the
output of child processes). ``--debug`` shows everything.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

#: Native lines that are noise to a user of the command line.
NATIVE_NOISE = re.compile(
    rb"^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\]"  # glog / absl lines
    rb"|WARNING: All log messages before absl::InitializeLog\(\)"
    rb"|WARNING: Logging before InitGoogleLogging\(\)"
    rb"|To enable the following instructions: "  # the CPU-features line's tail
    # libjpeg's and libpng's warnings (fprintf to stderr, whatever the level)
    rb"|Corrupt JPEG data: |Premature end of JPEG file|Invalid SOS parameters"
    rb"|Bogus Huffman table definition|Inconsistent progression sequence"
    rb"|Input file read error"  # a JPEG whose body is garbage
    rb"|Warning: unknown JFIF revision number|libpng warning: "
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate)"
)


def quiet_environment() -> None:
    """Asks TensorFlow for errors only, unless the user set the level."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@contextlib.contextmanager
def native_noise_filtered() -> Iterator[None]:
    """Drops `NATIVE_NOISE` lines from stderr; passes the rest on at once."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # No stderr descriptor (embedded interpreters).
        yield
        return
    read_end, write_end = os.pipe()
    reader = threading.Thread(target=_pass_on, args=(read_end, saved), daemon=True)
    reader.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # Closes the pipe's last write end but children's.
        reader.join(timeout=5)
        os.close(saved)


def _pass_on(read_end: int, out: int) -> None:
    """Copies lines from ``read_end`` to ``out``, leaving out the noise."""
    with os.fdopen(read_end, "rb") as lines:
        for line in lines:
            if not NATIVE_NOISE.match(line):
                os.write(out, line)


def run_handler(target: str, options: dict[str, Any], debug: bool) -> int:
    """Imports a subcommand's handler and runs it, quietly unless ``debug``.

    Args:
        target: ``"module:function"``, as in `tltf.cli.subcommands`.
        options: The checked options.
        debug: Show TensorFlow's native lines as they come.

    Returns:
        The handler's exit status.
    """
    if debug:
        return load_handler(target)(options)
    quiet_environment()
    with native_noise_filtered():
        return load_handler(target)(options)


def load_handler(target: str) -> Callable[[dict[str, Any]], int]:
    """The function ``"module:function"`` names (importing the library)."""
    module_name, _, function = target.partition(":")
    return getattr(importlib.import_module(module_name), function)
