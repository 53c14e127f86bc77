"""The handler runs with TensorFlow's native noise kept off stderr."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]

#: What native code writes to file descriptor 2 in a real `tltf` process.
NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are "
    "written to STDERR",
    "I0000 00:00:1796602781.538189    8703 cudart_stub.cc:31] Could not find "
    "cuda drivers on your machine, GPU will not be used.",
    "E0000 00:00:1796602787.868986    8703 cuda_platform.cc:52] failed call to "
    "cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    "To enable the following instructions: AVX2 FMA, in other operations, "
    "rebuild TensorFlow with the appropriate compiler flags.",
    "Corrupt JPEG data: 695 extraneous bytes before marker 0xd9",
    "Premature end of JPEG file",
    "Input file read error",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
]


def test_native_noise_is_dropped_and_everything_else_passes_in_order():
    code = textwrap.dedent(
        f"""
        import os, subprocess, sys, warnings
        sys.argv[0] = "tltf"  # as the command's process: no TensorFlow here
        from tltf.cli.startup import native_noise_filtered

        noise = {NOISE!r}
        with native_noise_filtered():
            os.write(2, (noise[0] + "\\n" + noise[1] + "\\n").encode())
            print("python line", file=sys.stderr, flush=True)
            os.write(2, ("\\n".join(noise[2:]) + "\\nnative line\\n").encode())
            warnings.warn("a warning tltf means to show")
            sys.stderr.flush()
            subprocess.run([sys.executable, "-c",
                "import os; os.write(2, b'" + noise[1] + "\\\\nchild line\\\\n')"])
            os.write(2, b"no newline at the end")
        print("after", file=sys.stderr)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPOSITORY,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert [line for line in lines if "warnings.warn" not in line] == [
        "python line",
        "native line",
        "<string>:11: UserWarning: a warning tltf means to show",
        "child line",
        "no newline at the endafter",
    ]
