"""tltf against the hand-written Keras recipe: speed and memory, as ratios.

Usage (from the repository root)::

    python -m benchmarks.speed.run            # MobileNetV2 at 96x96, ~1600 JPEGs
    python -m benchmarks.speed.run --large    # 160x160, ~4000 JPEGs
    python -m benchmarks.speed.run --quick    # smoke run, 32x32, a few minutes

Each part runs in its own process (`benchmarks/speed/parts.py`) on the same
JPEG folder and the same base weights, so each peak memory figure is that
process's own (``ru_maxrss``). Where only speed is compared (the
forward-pass floor against tltf's frozen stage, and the three input
pipelines), and for XLA fine-tuning (minutes of compiling per process), the
variants alternate inside one process so that slow spells of a shared
machine hit them alike (`frozen.py` explains the frozen stage's timing and
its paired accuracy comparison).
The figures go to ``RESULTS.json`` (``RESULTS-large.json``) and the report
to the markdown file beside it (`benchmarks/speed/report.py`).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    finish,
    machine,
    new_record,
    output_path,
    parser,
    run_module,
    save_run,
)

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
    # Smoke run: every part, tiny (MobileNetV2 takes 32x32 at the least).
    "quick": {
        "image_size": 32,
        "images_per_class": 20,
        "finetune_steps": 2,
        "frozen_large_size": 48,
    },
}
# XLA on CPU runs the MobileNetV2 training step far slower: time fewer steps.
JIT_STEPS = {"default": 2, "large": 2, "quick": 1}


def config(size: str, workdir: Path) -> dict[str, Any]:
    """The shared settings of every part; ``size`` is a key of `SETTINGS`."""
    quick = size == "quick"
    return {
        **SETTINGS[size],
        "finetune_steps_jit": JIT_STEPS[size],
        "num_classes": 4,
        "batch_size": 32,
        "epochs": 10,
        "seed": 7,
        "frozen_reps": 1 if quick else 5,
        "xla_epochs": 1 if quick else 3,
        "frozen_large_reps": 1 if quick else 2,
        "pipeline_rounds": 2 if quick else 3,
        "serving_calls": 5 if quick else 60,
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
    quiet = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    proc = run_module("benchmarks.speed.parts", name, str(path), **quiet)
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


def main(argv: list[str] | None = None) -> None:
    """Runs every part, then writes the record and the report and prints it."""
    parser_ = parser(__doc__, quick="smoke run: 32x32 images, every part once")
    parser_.add_argument("--large", action="store_true", help="160x160, 4000 images")
    args = parser_.parse_args(argv)
    size = "quick" if args.quick else "large" if args.large else "default"
    name = "RESULTS-large.md" if args.large else "RESULTS.md"
    output = output_path(args.output, HERE, name, args.quick)
    started = time.time()
    info = machine(started)
    info["TensorFlow threads"] = str(args.threads or "all (default)")
    with tempfile.TemporaryDirectory(prefix="tltf-bench-") as tmp:
        cfg = {**config(size, Path(tmp)), "threads": args.threads}
        print(f"tltf speed benchmark ({size}) on {info['cpu']}", flush=True)
        results = run_all(cfg, Path(tmp))
    finish(info, started)
    minutes = (time.time() - started) / 60
    results["run"] = {"minutes": minutes, "large": args.large, "quick": args.quick}
    flags = {"default": "", "large": " --large", "quick": " --quick"}[size]
    command = f"python -m benchmarks.speed.run{flags}"
    record = new_record(__package__ + ".report", command, cfg, results, info)
    save_run(output, record)


if __name__ == "__main__":
    main()
