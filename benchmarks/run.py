"""tltf against the hand-written Keras recipe: speed and memory, as ratios.

Usage::

    python benchmarks/run.py            # MobileNetV2 at 96x96, ~2000 JPEGs
    python benchmarks/run.py --large    # 160x160, ~4000 JPEGs

Each part runs in its own process (`benchmarks/parts.py`) on the same JPEG
folder and the same base weights, so each peak memory figure is that
process's own (``ru_maxrss``). Where only speed is compared (the
forward-pass floor against tltf's frozen stage, and the three input
pipelines), and for XLA fine-tuning (minutes of compiling per process), the
variants alternate inside one process so that slow spells of a shared
machine hit them alike (`frozen.py` explains the frozen stage's timing and
its paired accuracy comparison).
The figures are printed and written to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

SETTINGS = {
    "default": {
        "image_size": 96,
        "images_per_class": 400,
        "finetune_steps": 8,
        "frozen_large_size": 128,
    },
    "large": {
        "image_size": 160,
        "images_per_class": 1000,
        "finetune_steps": 20,
        "frozen_large_size": 224,
    },
}
# XLA on CPU runs the MobileNetV2 training step far slower: time fewer steps.
JIT_STEPS = {"default": 2, "large": 2}


def config(large: bool, workdir: Path) -> dict[str, Any]:
    """The shared settings of every part."""
    return {
        **SETTINGS["large" if large else "default"],
        "finetune_steps_jit": JIT_STEPS["large" if large else "default"],
        "num_classes": 4,
        "batch_size": 32,
        "epochs": 10,
        "seed": 7,
        "frozen_reps": 5,
        "xla_epochs": 3,
        "frozen_large_reps": 2,
        "pipeline_rounds": 3,
        "serving_calls": 60,
        "folder": str(workdir / "jpegs"),
        "weights": str(workdir / "mobilenet_v2_random.weights.h5"),
        "arrays": str(workdir / "train_pixels.npz"),
        "export_dir": str(workdir / "export"),
        "jit": False,
    }


def run_part(name: str, cfg: dict[str, Any], workdir: Path, **overrides: Any) -> dict:
    """Runs one part in a fresh Python process and returns its RESULT."""
    path = workdir / f"{name}-{len(list(workdir.glob('*.json')))}.json"
    path.write_text(json.dumps({**cfg, **overrides}))
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(HERE / "parts.py"), name, str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"},
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"Part {name} failed (exit code {proc.returncode}).")
    result = json.loads(lines[-1][len("RESULT ") :])
    print(
        f"  {name} {overrides or ''}: {time.perf_counter() - start:.0f}s wall",
        flush=True,
    )
    return result


# Timed comparisons that need a process each (their peak memory is part of
# the report) run interleaved, ROUNDS times, and keep each variant's fastest
# round: load from other processes only ever slows a run. The frozen stage,
# the input pipeline and XLA fine-tuning (minutes per process) alternate
# their variants inside one process.
ROUNDS = 2
FINETUNE_PARTS = {
    "finetune_baseline": ("finetune_baseline", {}),
    "finetune_tltf": ("finetune_tltf", {}),
}


def fastest_of_rounds(
    cfg: dict[str, Any], workdir: Path, parts: dict[str, tuple], suffix: str, **extra
) -> dict[str, dict]:
    """Runs ``parts`` interleaved ROUNDS times; keeps each one's fastest round."""
    rounds: dict[str, list[dict]] = {key: [] for key in parts}
    for _ in range(ROUNDS):
        for key, (name, overrides) in parts.items():
            rounds[key].append(run_part(name, cfg, workdir, **overrides, **extra))
    return {
        key + suffix: {
            **min(runs, key=lambda x: x["step_seconds"]),
            "rounds_step_seconds": [x["step_seconds"] for x in runs],
            "peak_rss_mb": max(x["peak_rss_mb"] for x in runs),
        }
        for key, runs in rounds.items()
    }


def run_all(cfg: dict[str, Any], workdir: Path) -> dict[str, dict]:
    """Every measure, in order; names are the keys of the report."""
    r = {"prepare": run_part("prepare", cfg, workdir)}
    r["frozen_baseline"] = run_part("frozen_baseline", cfg, workdir)
    r["frozen_tltf"] = run_part("frozen_tltf", cfg, workdir)
    r.update(fastest_of_rounds(cfg, workdir, FINETUNE_PARTS, "_jit0"))
    r["pipeline"] = run_part("pipeline", cfg, workdir)
    r["finetune_xla"] = run_part("finetune_xla", cfg, workdir)
    for name in ("export", "serve_keras", "serve_savedmodel"):
        r[name] = run_part(name, cfg, workdir)
    return r


def machine() -> dict[str, str]:
    """CPU, cores, memory, load and library versions."""
    import keras
    import tensorflow as tf

    cpu = platform.processor() or "unknown"
    meminfo = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        cpu = next(
            x.split(":", 1)[1].strip() for x in text.splitlines() if "model name" in x
        )
        meminfo = (
            Path("/proc/meminfo").read_text().splitlines()[0].split(":")[1].strip()
        )
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": meminfo,
        "load average (1 min) at start": f"{os.getloadavg()[0]:.2f}",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="160x160, 4000 images")
    parser.add_argument(
        "--output", default=str(HERE / "RESULTS.md"), help="Markdown report path"
    )
    args = parser.parse_args(argv)
    from report import render  # Local module, next to this file.

    info = machine()
    cfg = None
    with tempfile.TemporaryDirectory(prefix="tltf-bench-") as tmp:
        cfg = config(args.large, Path(tmp))
        print(
            f"tltf benchmark ({'large' if args.large else 'default'}) on {info['cpu']}"
        )
        start = time.perf_counter()
        results = run_all(cfg, Path(tmp))
        total = time.perf_counter() - start
    info["load average (1 min) at end"] = f"{os.getloadavg()[0]:.2f}"
    info["total wall time"] = f"{total / 60:.1f} min"
    results["run"] = {"minutes": total / 60, "large": args.large}
    text = render(results, cfg, info)
    print(text)
    Path(args.output).write_text(text)
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
