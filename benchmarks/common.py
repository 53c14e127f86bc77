"""What every benchmark shares: the record, the machine, tables and verdicts.

A run writes one *record* (JSON: the figures, the settings, the machine and
the command that made them) and its report module turns a record into
markdown with ``render(record)``. `write_report` writes both, the JSON
beside the markdown, so every report regenerates from its record without
rerunning anything: ``python -m benchmarks.render`` re-renders them all.

A new benchmark needs only these pieces::

    info = machine(started)  # at the start; finish(info, started) at the end
    record = new_record("benchmarks.mine.report", command, config, results, info)
    save_run(HERE / "RESULTS.md", record)

and in ``benchmarks/mine/report.py`` a ``render(record) -> str`` built from
`goals_table`, `table`, `mean_sd`, `note_lines` and `machine_section`.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

ROOT = Path(__file__).resolve().parents[1]  # the repository
DATASETS = ROOT.parent / "shared" / "datasets"  # CLINC150, digits, Amazon reviews

T = TypeVar("T")
#: (goal, target, measured, met): met is None when it could not be measured.
Goal = tuple[str, str, str, "bool | None"]


# --- figures ---


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A markdown table, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows]


def verdict(met: bool | None) -> str:
    """How a report says whether a goal was met."""
    return "not measured" if met is None else "**met**" if met else "**missed**"


def goals_table(goals: Iterable[Goal]) -> list[str]:
    """The goals as a table: goal, target, measured, result."""
    rows = [
        [goal, target, measured, verdict(met)] for goal, target, measured, met in goals
    ]
    return table(["goal", "target", "measured", "result"], rows)


def mean_sd(values: Sequence[float], digits: int = 2) -> str:
    """One value as it is; several as ``mean ± population sd (each value)``."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    mean, sd = np.mean(values), np.std(values)
    each = ", ".join(f"{v:.{digits}f}" for v in values)
    return f"{mean:.{digits}f} ± {sd:.{digits}f} ({each})"


def note_lines(record: dict[str, Any]) -> list[str]:
    """A record's ``note`` (how it was made, if not by one plain run), or nothing."""
    return [f"Note: {record['note']}", ""] if record.get("note") else []


def machine_section(info: dict[str, str]) -> list[str]:
    """A report's "Machine" section: the machine and run facts, one bullet each."""
    return ["## Machine", "", *(f"- {key}: {value}" for key, value in info.items()), ""]


# --- the machine ---


def machine(started: float, libraries: dict[str, str] | None = None) -> dict[str, str]:
    """Date, CPU, cores, memory, load, versions and the code measured.

    Args:
        started: ``time.time()`` when the run began.
        libraries: More versions to list: name -> module, e.g.
            ``{"scikit-learn": "sklearn"}``.
    """
    import keras
    import tensorflow as tf

    import tltf

    info = {
        "date (UTC)": time.strftime("%Y-%m-%d %H:%M", time.gmtime(started)),
        "cpu": _cpu(),
        "cores": str(os.cpu_count()),
        "memory": _memory(),
        "load average (1 min) at start": f"{os.getloadavg()[0]:.2f}",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    for name, module in (libraries or {}).items():
        info[name] = importlib.import_module(module).__version__
    info["tltf"] = f"{tltf.__version__}, {source_state()}"
    return info


def _cpu() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(x.split(":", 1)[1].strip() for x in lines if "model name" in x)
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def _memory() -> str:
    try:
        return Path("/proc/meminfo").read_text().splitlines()[0].split(":")[1].strip()
    except (OSError, IndexError):
        return "unknown"


def source_state() -> str:
    """The git commit of the code measured, and whether tltf/ had edits on top."""
    git = ["git", "-C", str(ROOT)]
    try:
        commit = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "tltf"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "git state unknown"
    return f"commit {commit}" + (" + uncommitted changes in tltf/" if dirty else "")


def finish(info: dict[str, str], started: float) -> dict[str, str]:
    """Adds the load at the end and the total wall time to ``info``."""
    info["load average (1 min) at end"] = f"{os.getloadavg()[0]:.2f}"
    info["total wall time"] = f"{(time.time() - started) / 60:.1f} min"
    return info


# --- running an arm ---


def run_isolated(seed: int, arm: Callable[[], T], failed: Callable[[str], T]) -> T:
    """Runs ``arm()`` from ``seed``; an exception becomes ``failed(message)``.

    One arm that fails must not end a run of many: its traceback is printed
    and ``failed`` gets the error as one line (at most 500 characters) for
    the report. Keras' session is cleared afterwards either way, so the next
    arm starts from the same memory.
    """
    import keras

    keras.utils.set_random_seed(seed)
    try:
        return arm()
    except Exception as error:  # noqa: BLE001  (reported, the run goes on)
        lines = traceback.format_exception_only(type(error), error)
        traceback.print_exc()
        return failed(" ".join(lines[-1].split())[:500])
    finally:
        keras.backend.clear_session()
        gc.collect()


# --- the command line ---


def parser(doc: str, quick: str | None = None) -> argparse.ArgumentParser:
    """A benchmark's parser: ``--output``, ``--threads`` and (with help) ``--quick``."""
    out = argparse.ArgumentParser(description=doc.splitlines()[0])
    if quick:
        out.add_argument("--quick", action="store_true", help=quick)
    out.add_argument("--output", help="report path (default: next to the script)")
    out.add_argument(
        "--threads", type=int, help="TensorFlow threads, intra and inter op each"
    )
    return out


def set_threads(threads: int | None) -> str:
    """Limits TensorFlow's threads (before it runs anything); says how many."""
    if not threads:
        return "all (default)"
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    return str(threads)


def output_path(given: str | None, folder: Path, name: str, quick: bool) -> Path:
    """``--output``, else ``folder / name`` (a quick run: the temporary folder)."""
    if given:
        return Path(given)
    if quick:
        return Path(tempfile.gettempdir()) / f"{folder.name}-{Path(name).stem}-quick.md"
    return folder / name


def run_module(module: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Runs ``python -m module args`` in a fresh process; its output captured.

    The process starts in this one's working folder with the repository on
    its path, so it imports the same ``benchmarks`` and ``tltf`` as this one.
    """
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path, **env},
    )


# --- the record ---


def new_record(
    renderer: str,
    command: str,
    config: dict[str, Any],
    results: dict[str, Any],
    info: dict[str, str],
) -> dict[str, Any]:
    """A run's record: the module whose ``render`` writes the report, and the rest."""
    return {
        "renderer": renderer,
        "command": command,
        "config": config,
        "results": results,
        "machine": info,
    }


def json_path(report: Path) -> Path:
    """Where a report's record lives: beside it, ``.json`` for ``.md``."""
    return Path(report).with_suffix(".json")


def render(record: dict[str, Any]) -> str:
    """The markdown of a record, by its renderer's ``render``."""
    return importlib.import_module(record["renderer"]).render(record)


def write_report(report: Path, record: dict[str, Any]) -> str:
    """Writes the record (JSON) beside the report, then the report; returns it."""
    from tltf.files import write_text

    text = json.dumps(record, indent=1, default=str) + "\n"
    write_text(json_path(report), text)
    markdown = render(json.loads(text))  # what `benchmarks.render` will write
    write_text(report, markdown)
    return markdown


def save_run(report: Path, record: dict[str, Any]) -> None:
    """Writes a finished run's record and report, and prints the report."""
    print(write_report(report, record))
    print(f"Wrote {report} and its record {json_path(report).name}")


def read_record(path: Path) -> dict[str, Any]:
    """A record written by `write_report`."""
    return json.loads(Path(path).read_text())
