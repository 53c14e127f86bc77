"""Turns the parts' figures into ratios, targets and the RESULTS.md text."""

from __future__ import annotations

import json
from typing import Any


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def targets(r: dict[str, dict]) -> list[tuple[str, str, str, bool]]:
    """(measure, target, measured, met) for every target of the issue."""
    floor, tl, bl = r["floor"]["seconds"], r["frozen_tltf"], r["frozen_baseline"]
    acc_diff = abs(tl["val_accuracy"] - bl["val_accuracy"]) * 100
    rows = [
        ("1. frozen stage vs forward-pass floor", "<= 1.30x", tl["seconds"] / floor),
        (
            "1. frozen stage speed-up over baseline",
            ">= 5x",
            bl["seconds"] / tl["seconds"],
        ),
    ]
    out = [(m, t, f"{v:.2f}x", v <= 1.3 if "<=" in t else v >= 5) for m, t, v in rows]
    out.append(
        (
            "1. val accuracy, |tltf - baseline|",
            "<= 0.5 points",
            f"{acc_diff:.2f} points",
            acc_diff <= 0.5,
        )
    )
    for jit in (0, 1):
        ratio = (
            r[f"finetune_tltf_jit{jit}"]["step_seconds"]
            / r[f"finetune_baseline_jit{jit}"]["step_seconds"]
        )
        name = f"2. fine-tuning step vs baseline, jit_compile={'on' if jit else 'off'}"
        out.append((name, "<= 1.05x", f"{ratio:.3f}x", ratio <= 1.05))
    ratio = r["pipeline_folder"]["step_seconds"] / r["pipeline_tensors"]["step_seconds"]
    out.append(
        (
            "3. JPEG folder step vs in-memory tensors",
            "<= 1.10x",
            f"{ratio:.3f}x",
            ratio <= 1.10,
        )
    )
    return out


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _frozen(r, cfg) -> list[str]:
    floor, tl, bl = r["floor"], r["frozen_tltf"], r["frozen_baseline"]
    head_s = tl["seconds"] - tl["features_seconds"]
    rows = [
        [
            "forward-pass floor: base over the training set once",
            f"{floor['seconds']:.1f}",
            "-",
            "1.00x",
        ],
        [
            "tracing the forward function once (not in the floor)",
            f"{floor['trace_seconds']:.1f}",
            "-",
            f"{floor['trace_seconds'] / floor['seconds']:.2f}x",
        ],
        [
            "forward-pass floor: training + validation sets once",
            f"{floor['seconds'] + floor['val_seconds']:.1f}",
            "-",
            f"{(floor['seconds'] + floor['val_seconds']) / floor['seconds']:.2f}x",
        ],
        [
            f"tltf fit_frozen_head, {cfg['epochs']} epochs (features cached: "
            f"{tl['cached']})",
            f"{tl['seconds']:.1f}",
            f"{tl['val_accuracy']:.4f}",
            f"{tl['seconds'] / floor['seconds']:.2f}x",
        ],
        [
            "  of which: base features (train + validation)",
            f"{tl['features_seconds']:.1f}",
            "-",
            f"{tl['features_seconds'] / floor['seconds']:.2f}x",
        ],
        [
            f"  of which: head training, {cfg['epochs']} epochs",
            f"{head_s:.1f}",
            "-",
            f"{head_s / floor['seconds']:.2f}x",
        ],
        [
            f"Keras recipe, {cfg['epochs']} epochs over images",
            f"{bl['seconds']:.1f}",
            f"{bl['val_accuracy']:.4f}",
            f"{bl['seconds'] / floor['seconds']:.2f}x",
        ],
    ]
    return _table(["run", "seconds", "val accuracy", "vs floor"], rows) + [
        "",
        "Floor and tltf rows: the faster of two interleaved rounds (both in the "
        "raw figures); the Keras recipe: one round.",
    ]


def _finetune(r) -> list[str]:
    rows = []
    for jit in (0, 1):
        b = r[f"finetune_baseline_jit{jit}"]["step_seconds"]
        t = r[f"finetune_tltf_jit{jit}"]["step_seconds"]
        rows.append(
            [
                "on" if jit else "off",
                f"{1000 * b:.0f}",
                f"{1000 * t:.0f}",
                f"{t / b:.3f}x",
            ]
        )
    manual = r["finetune_tltf_manual_jit0"]["step_seconds"]
    base = r["finetune_baseline_jit0"]["step_seconds"]
    rows.append(
        [
            "off",
            f"{1000 * base:.0f}",
            f"{1000 * manual:.0f} (no callback)",
            f"{manual / base:.3f}x",
        ]
    )
    lines = _table(
        ["jit_compile", "baseline ms/step", "tltf ms/step", "tltf / baseline"], rows
    )
    return lines + [
        "",
        f"tltf rows: {r['finetune_tltf_jit0']['how']} (callback rows) and, in the "
        f"last row, {r['finetune_tltf_manual_jit0']['how']} without the callback. "
        "Median step of the second epoch (the first one traces and compiles). "
        "jit_compile=off rows: the faster of two interleaved rounds (both in the "
        "raw figures); jit_compile=on: one round of two steps per epoch.",
    ]


def _pipeline(r) -> list[str]:
    t = r["pipeline_tensors"]["step_seconds"]
    rows = [
        ["in-memory tensors (tltf.data.from_arrays)", f"{1000 * t:.0f}", "1.000x"],
    ]
    for key, name in (
        ("pipeline_folder", "JPEG folder, tltf.data.image_folder (default cache=True)"),
        (
            "pipeline_folder_nocache",
            "JPEG folder, image_folder(cache=False): decode every epoch",
        ),
    ):
        s = r[key]["step_seconds"]
        rows.append([name, f"{1000 * s:.0f}", f"{s / t:.3f}x"])
    return _table(["input", "ms/step (median, epoch 2)", "vs tensors"], rows) + [
        "",
        "Each row: the faster of two interleaved rounds (both in the raw figures).",
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
    return _table(["", "batch 1 p50 ms", "batch 1 p95 ms", "batch 64 images/s"], rows)


def _memory(r) -> list[str]:
    rows = [[name, f"{res['peak_rss_mb']:.0f}"] for name, res in r.items()]
    return _table(["process (one per measure)", "peak RSS MB (ru_maxrss)"], rows)


def render(r: dict[str, dict], cfg: dict[str, Any], info: dict[str, str]) -> str:
    """The whole RESULTS.md."""
    prep = r["prepare"]
    lines = [
        "# tltf vs the hand-written Keras recipe",
        "",
        "Written by `python benchmarks/run.py`"
        + (" --large" if cfg["image_size"] > 96 else "")
        + ". All figures come from one run; ratios compare runs of that run.",
        "",
        f"Data: {prep['num_train']} training and {prep['num_validation']} validation "
        f"synthetic JPEGs ({cfg['num_classes']} classes, {cfg['image_size']}x"
        f"{cfg['image_size']}), batch {cfg['batch_size']}. Base: Keras MobileNetV2 "
        "(random weights saved once and loaded by both sides; ImageNet weights cannot "
        "be downloaded here), head: average pooling, dropout 0.2, softmax.",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in info.items()],
        "",
        "## Targets",
        "",
        *_table(
            ["measure", "target", "measured", "result"],
            [[m, t, v, _met(ok)] for m, t, v, ok in targets(r)],
        ),
        "",
        "## 1. Frozen stage",
        "",
        *_frozen(r, cfg),
        "",
        "## 2. Fine-tuning step (whole base unfrozen, Adam 1e-5)",
        "",
        *_finetune(r),
        "",
        "## 3. Input pipeline (tltf model, plain fit with a frozen base)",
        "",
        *_pipeline(r),
        "",
        "## 4. Serving",
        "",
        *_serving(r),
        "",
        "## 5. Peak memory",
        "",
        *_memory(r),
        "",
        "## Raw figures (seconds, MB)",
        "",
        "```json",
        json.dumps(r, indent=1, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(lines)
