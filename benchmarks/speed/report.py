"""Turns a record of `run.py` into ratios, targets and the report."""

from __future__ import annotations

from typing import Any

from benchmarks.common import Goal, goals_table, machine_section, note_lines, table


def floors(r: dict[str, dict]) -> dict[str, float]:
    """Cold floors (trace + pass): training set, with validation, larger images.

    Each is the fastest run's own total (never the sum of the fastest trace
    and the fastest pass of different runs), as tltf's runs are measured.
    """
    runs = r["frozen_tltf"]["runs"]

    def fastest(name: str, keys: tuple[str, ...]) -> float:
        return min(sum(run[key] for key in keys) for run in runs[name])

    cold = ("trace_seconds", "train_pass_seconds")
    best = min(runs["floor"], key=lambda run: sum(run[key] for key in cold))
    return {
        "train_trace": best["trace_seconds"],
        "train": fastest("floor", cold),
        "train_val": fastest("floor", (*cold, "val_pass_seconds")),
        "large": fastest("large_floor", cold),
        "train_cpu": fastest("floor", ("train_cpu_seconds",)),
        "train_val_cpu": fastest("floor", ("train_cpu_seconds", "val_cpu_seconds")),
        "large_cpu": fastest("large_floor", ("train_cpu_seconds",)),
    }


def cpu_ratios(r: dict[str, dict]) -> dict[str, float]:
    """The frozen-stage ratios in process CPU time instead of wall time."""
    f, floor = r["frozen_tltf"], floors(r)
    return {
        "train only": f["train_only"]["cpu_seconds"] / floor["train_cpu"],
        "with validation": f["with_val"]["cpu_seconds"] / floor["train_val_cpu"],
        "larger images": f["large_train_only"]["cpu_seconds"] / floor["large_cpu"],
    }


def _clock_note(r: dict[str, dict]) -> str:
    """Why CPU time is no steadier than wall time, from this run's floors."""
    runs = r["frozen_tltf"]["runs"]["floor"]
    pairs = ", ".join(
        f"{x['trace_seconds'] + x['train_pass_seconds']:.1f}/"
        f"{x['train_cpu_seconds']:.1f}"
        for x in runs
    )
    return (
        "CPU time is no steadier than wall time here: TensorFlow's idle "
        "threads spin, so a pass uses more or less CPU with the machine's "
        f"load (this run's floor passes, wall/CPU seconds: {pairs})."
    )


def targets(r: dict[str, dict], cfg: dict[str, Any]) -> list[Goal]:
    """(measure, target, measured, met) for every target."""
    f, bl, floor = r["frozen_tltf"], r["frozen_baseline"], floors(r)
    ratios = [
        (
            "1. frozen stage, training set only, vs floor (training set)",
            f["train_only"]["seconds"] / floor["train"],
        ),
        (
            "1. frozen stage with validation vs floor (training + validation sets)",
            f["with_val"]["seconds"] / floor["train_val"],
        ),
        (
            f"1. frozen stage, training set at {cfg['frozen_large_size']}px, "
            "vs its floor",
            f["large_train_only"]["seconds"] / floor["large"],
        ),
    ]
    out = [(m, "<= 1.30x", f"{v:.2f}x", v <= 1.3) for m, v in ratios]
    speedup = bl["seconds"] / f["with_val"]["seconds"]
    out.append(
        (
            "1. frozen stage speed-up over the recipe",
            ">= 5x",
            f"{speedup:.1f}x",
            speedup >= 5,
        )
    )
    diff = abs(f["paired_val_accuracy"] - bl["val_accuracy"]) * 100
    out.append(
        (
            "1. val accuracy difference, tltf vs recipe (paired seeds)",
            "<= 0.5 points",
            f"{diff:.2f} points",
            diff <= 0.5,
        )
    )
    for jit, (baseline, tltf_step) in enumerate(_finetune_steps(r)):
        ratio = tltf_step / baseline
        name = f"2. fine-tuning step vs recipe, jit_compile={'on' if jit else 'off'}"
        out.append((name, "<= 1.05x", f"{ratio:.3f}x", ratio <= 1.05))
    p = r["pipeline"]
    ratio = p["folder"]["step_seconds"] / p["tensors"]["step_seconds"]
    out.append(
        (
            "3. JPEG folder step vs in-memory tensors",
            "<= 1.10x",
            f"{ratio:.3f}x",
            ratio <= 1.10,
        )
    )
    run = r.get("run")
    if run and not run["large"] and not run.get("quick"):  # the default settings
        minutes = run["minutes"]
        out.append(("full run", "< 10 min", f"{minutes:.1f} min", minutes < 10))
    return out


def _frozen(r, cfg) -> list[str]:
    f, bl, floor = r["frozen_tltf"], r["frozen_baseline"], floors(r)
    ref = floor["train"]

    def row(name, seconds, base=ref):
        return [name, f"{seconds:.2f}", f"{seconds / base:.2f}x"]

    def stage(name, run, base):
        head = run["seconds"] - run["features_seconds"]
        return [
            row(name, run["seconds"], base),
            row(
                "  of which: until the head's first step (base traced, features "
                "computed, head model built)",
                run["features_seconds"],
                base,
            ),
            row(f"  of which: head training, {cfg['epochs']} epochs", head, base),
        ]

    epochs = cfg["epochs"]
    rows = [
        row("**floor**: base over the training set once, cold (trace + pass)", ref),
        row("  of which: tracing the forward function", floor["train_trace"]),
        *stage(
            f"tltf fit_frozen_head, {epochs} epochs, no validation",
            f["train_only"],
            ref,
        ),
        row(
            "**floor** over training + validation sets, cold",
            floor["train_val"],
            floor["train_val"],
        ),
        *stage(
            f"tltf fit_frozen_head, {epochs} epochs, validation every epoch",
            f["with_val"],
            floor["train_val"],
        ),
        row(
            f"Keras recipe, {epochs} epochs over the images, validation every epoch",
            bl["seconds"],
            floor["train_val"],
        ),
    ]
    size = cfg["frozen_large_size"]
    large = f["large_train_only"]
    large_head = large["seconds"] - large["features_seconds"]
    rows_large = [
        [
            f"**floor**, training set at {size}x{size}, cold",
            f"{floor['large']:.2f}",
            "1.00x",
        ],
        [
            f"tltf fit_frozen_head, {epochs} epochs, no validation",
            f"{large['seconds']:.2f}",
            f"{large['seconds'] / floor['large']:.2f}x",
        ],
        [
            "  of which: head training",
            f"{large_head:.2f}",
            f"{large_head / floor['large']:.2f}x",
        ],
    ]
    seeds = ", ".join(f"{a:.4f}" for a in f["val_accuracy_by_seed"])
    return table(["run", "seconds", "vs floor"], rows) + [
        "",
        "vs floor: runs over the training set only against the first floor, "
        "runs with validation against the floor over training + validation.",
        "",
        f"Features cached: {f['cached']}. Floor and tltf rows: the fastest of "
        f"{cfg['frozen_reps']} alternating runs in one process (all in the JSON "
        "record); each tltf run starts from a new model and an empty feature "
        "cache. The Keras recipe: one run.",
        "",
        "| validation accuracy | recipe | tltf |",
        "|---|---|---|",
        f"| paired seed {cfg['seed']}: same head weights, dropout masks and "
        f"example order | {bl['val_accuracy']:.4f} | {f['paired_val_accuracy']:.4f} |",
        f"| tltf with seeds {cfg['seed']}, {cfg['seed'] + 1}, ... | - | {seeds} |",
        "",
        "The paired runs differ only in where the features come from (computed "
        "once, or by the base at every step), which is what the accuracy target "
        "checks; the seed row shows how far accuracy moves with the seed alone.",
        "",
        "Head training costs the same per step whatever the images, while the "
        "base costs more per batch on larger images (or a larger base), so the "
        f"same frozen stage on the same images resized to {size}x{size} (fastest "
        f"of {cfg['frozen_large_reps']} alternating runs):",
        "",
        *table(["run", "seconds", "vs its floor"], rows_large),
    ]


def _finetune_steps(r) -> list[tuple[float, float]]:
    """(recipe, tltf) seconds per fine-tuning step, XLA off then on."""
    x = r["finetune_xla"]
    return [
        (
            r["finetune_baseline_jit0"]["step_seconds"],
            r["finetune_tltf_jit0"]["step_seconds"],
        ),
        (x["baseline_step_seconds"], x["tltf_step_seconds"]),
    ]


def _finetune(r, cfg) -> list[str]:
    rows = [
        ["on" if jit else "off", f"{1000 * b:.0f}", f"{1000 * t:.0f}", f"{t / b:.3f}x"]
        for jit, (b, t) in enumerate(_finetune_steps(r))
    ]
    lines = table(
        ["jit_compile", "baseline ms/step", "tltf ms/step", "tltf / baseline"], rows
    )
    return lines + [
        "",
        f"tltf: {r['finetune_tltf_jit0']['how']}, compiled with tltf.compile_model "
        "at 1e-5; the recipe: `base_model.trainable = True` and recompile at 1e-5. "
        "The first epoch traces and compiles and is not counted. XLA off: "
        f"{cfg['finetune_steps']} steps per epoch, median step of the second "
        "epoch, the faster of two interleaved rounds, each in its own process "
        "(both in the JSON record). XLA on (slow on CPU: seconds per step, tens "
        "of seconds to compile): one process, the two models taking turns "
        f"epoch by epoch for {cfg['xla_epochs']} epochs of "
        f"{cfg['finetune_steps_jit']} steps after the first; median step of "
        "those epochs.",
    ]


def _pipeline(r, cfg) -> list[str]:
    p = r["pipeline"]
    t = p["tensors"]["step_seconds"]
    rows = []
    for key, name in (
        ("tensors", "in-memory tensors (tltf.data.from_arrays)"),
        ("folder", "JPEG folder, tltf.data.image_folder (default cache=True)"),
        (
            "folder_nocache",
            "JPEG folder, image_folder(cache=False): decodes every epoch",
        ),
    ):
        s = p[key]["step_seconds"]
        rows.append([name, f"{1000 * s:.0f}", f"{s / t:.3f}x"])
    return table(["input", "ms/step (median of an epoch)", "vs tensors"], rows) + [
        "",
        f"One model, one process: the three inputs take turns, one epoch each, "
        f"{cfg['pipeline_rounds']} rounds; the first round (tracing, filling the "
        "cache) is not counted and each input keeps its fastest epoch median.",
    ]


def _serving(r) -> list[str]:
    k, s = r["serve_keras"], r["serve_savedmodel"]
    rows = [
        [
            "Keras model called directly (`model(x)`)",
            f"{k['p50_ms']:.1f}",
            f"{k['p95_ms']:.1f}",
            f"{k['throughput']:.0f}",
        ],
        [
            f"SavedModel ({r['export']['how']}, signature `{s['signature']}`)",
            f"{s['p50_ms']:.1f}",
            f"{s['p95_ms']:.1f}",
            f"{s['throughput']:.0f}",
        ],
        [
            "SavedModel / Keras",
            f"{s['p50_ms'] / k['p50_ms']:.2f}x",
            f"{s['p95_ms'] / k['p95_ms']:.2f}x",
            f"{s['throughput'] / k['throughput']:.2f}x",
        ],
    ]
    return table(["", "batch 1 p50 ms", "batch 1 p95 ms", "batch 64 images/s"], rows)


MEMORY_ROWS = {
    "frozen_baseline": "1. Keras recipe, frozen stage",
    "frozen_tltf": "1. tltf frozen stage (and the floor runs, same process)",
    "finetune_baseline_jit0": "2. Keras recipe, fine-tuning, XLA off",
    "finetune_tltf_jit0": "2. tltf StagedUnfreezing, XLA off",
    "finetune_xla": "2. Keras recipe and tltf, fine-tuning, XLA on (one process)",
    "pipeline": "3. input pipelines (all three inputs)",
    "export": "4. tltf.export_saved_model",
    "serve_keras": "4. serving the Keras model",
    "serve_savedmodel": "4. serving the SavedModel",
    "prepare": "writing the JPEGs and weights",
}


def _memory(r) -> list[str]:
    rows = [
        [name, f"{r[key]['peak_rss_mb']:.0f}"]
        for key, name in MEMORY_ROWS.items()
        if key in r
    ]
    return table(["process (one per row)", "peak RSS MB (ru_maxrss)"], rows)


def render(record: dict[str, Any]) -> str:
    """The whole report of a `run.py` record."""
    r, cfg, info = record["results"], record["config"], record["machine"]
    prep = r["prepare"]
    lines = [
        "# tltf vs the hand-written Keras recipe",
        "",
        f"Written by `{record['command']}`. All figures come from one run; "
        "ratios compare runs of that run. The figures are in the JSON record "
        "beside this file (seconds, MB).",
        "",
        f"Data: {prep['num_train']} training and {prep['num_validation']} validation "
        f"synthetic JPEGs ({cfg['num_classes']} classes, {cfg['image_size']}x"
        f"{cfg['image_size']}), batch {cfg['batch_size']}. Base: Keras MobileNetV2 "
        "with random weights whose BatchNorm statistics are set from the data, "
        "saved once and loaded by both sides (ImageNet weights cannot be "
        "downloaded here). Head: average pooling, dropout 0.2, softmax. The "
        "recipe is `benchmarks/speed/baseline.py`, the Keras guide's code.",
        "",
        *note_lines(record),
        *machine_section(info),
        "## Targets",
        "",
        *goals_table(targets(r, cfg)),
        "",
        "Frozen-stage ratios compare each side's fastest run in wall time. In "
        "process CPU time (fastest run of each) they are: "
        + ", ".join(f"{k} {v:.2f}x" for k, v in cpu_ratios(r).items())
        + ". "
        + _clock_note(r),
        "",
        "## 1. Frozen stage",
        "",
        *_frozen(r, cfg),
        "",
        "## 2. Fine-tuning step (whole base unfrozen, Adam 1e-5)",
        "",
        *_finetune(r, cfg),
        "",
        "## 3. Input pipeline (tltf model, plain fit with a frozen base)",
        "",
        *_pipeline(r, cfg),
        "",
        "## 4. Serving",
        "",
        *_serving(r),
        "",
        "## 5. Peak memory",
        "",
        *_memory(r),
        "",
    ]
    return "\n".join(lines)
