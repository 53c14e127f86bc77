"""CLINC150: LoRA against full fine-tuning, compact serving, out-of-scope rejection.

Usage (from the repository root)::

    python -m benchmarks.clinc150.compact           # full data (~90 min, 1 thread)
    python -m benchmarks.clinc150.compact --quick   # smoke run: 10 intents
    python -m benchmarks.clinc150.compact --threads 1 --jobs 2  # (d), (f) side by side

Same encoder, length and data as `run.py` (the offline all-MiniLM-L6-v2,
32 tokens, the 150 in-scope intents):

- (d) `tltf.fine_tune` with its defaults (`run.py`'s epochs), and (f) the same
  call with ``lora_rank=8``; each in its own process, so that each has its
  own peak memory. Measured: in-scope test accuracy, trainable parameters,
  the memory the unfrozen training steps add (peak resident memory during
  the unfrozen epoch minus the resident memory when it starts), the
  adapter file's size against the model's weights.
- Serving, from (d)'s model: SavedModel float32 and int8, LiteRT float32
  and int8: size on disk, batch-1 latency (median of 200 calls), in-scope
  test accuracy through the export, agreement with Keras.
- Rejection: `tltf.calibrate_rejection` on the validation split (in-scope
  ``val`` and ``oos_val``); out-of-scope recall on ``oos_test`` and in-scope
  accuracy (a rejected in-scope query counts as wrong, as in Larson et al.).

The record goes to ``RESULTS-compact.json`` and the report, its own, to
``RESULTS-compact.md`` (`compact_report.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402

import tltf  # noqa: E402
from benchmarks import common  # noqa: E402
from benchmarks.clinc150.data import load_clinc, out_of_scope  # noqa: E402
from benchmarks.clinc150.run import (  # noqa: E402
    BACKBONE,
    DEFAULT_DATA,
    LIBRARIES,
    Settings,
    scores,
)

HERE = Path(__file__).resolve().parent
LORA_RANK = 8


class MemorySampler:
    """Resident memory of this process, sampled every 20 ms in a thread."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self._process.memory_info().rss))
            time.sleep(0.02)

    def added_after(self, start: float) -> int:
        """Peak resident bytes after ``start`` minus the bytes at ``start``."""
        before = [rss for t, rss in self.samples if t <= start]
        after = [rss for t, rss in self.samples if t > start]
        return max(after, default=0) - (before[-1] if before else 0)


class LastEpochStart(keras.callbacks.Callback):
    """When each epoch began (the unfrozen epoch is the last)."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.starts.append(time.perf_counter())


def weights_bytes(model: keras.Model) -> int:
    """Bytes of every weight of the model, as stored (float32)."""
    return int(sum(np.asarray(v).nbytes for v in model.weights))


def train_arm(arm: str, data_path: Path, quick: bool, workdir: Path) -> dict[str, Any]:
    """(d) or (f): fine-tune, save, score; run in a process of its own."""
    settings = Settings.for_quick("d") if quick else Settings()
    data = load_clinc(
        data_path, settings.intents, settings.train_per_intent, settings.eval_per_intent
    )
    model = tltf.build_text_classifier(
        BACKBONE, len(data.names), sequence_length=settings.sequence_length
    )
    kwargs = {"lora_rank": LORA_RANK} if arm == "f" else {}
    epochs = LastEpochStart()
    with MemorySampler() as memory:
        start = time.perf_counter()
        history = tltf.fine_tune(
            model,
            (data.train.texts, data.train.labels),
            epochs=settings.epochs,
            callbacks=[epochs],
            verbose=0,
            **kwargs,
        )
        seconds = time.perf_counter() - start
    predicted = np.argmax(
        model.predict(data.test.texts, batch_size=settings.batch_size, verbose=0), -1
    )
    accuracy, f1 = scores(data.test.labels, predicted)
    result = {
        "accuracy": accuracy,
        "macro_f1": f1,
        "seconds": seconds,
        "unfrozen_epoch_seconds": seconds - (epochs.starts[-1] - start),
        "trainable_params": int(history.history["trainable_params"][-1]),
        "total_params": int(model.count_params()),
        "step_memory_bytes": memory.added_after(epochs.starts[-1]),
        "peak_rss_bytes": max(rss for _, rss in memory.samples),
        "weights_bytes": weights_bytes(model),
    }
    if arm == "f":
        adapter = tltf.save_adapter(model, workdir / "adapter.safetensors")
        result["adapter_bytes"] = adapter.stat().st_size
        model = tltf.merge_lora(model)
    model.save(workdir / f"model_{arm}.keras")
    return result


# --- serving, from (d)'s model ---


def folder_bytes(path: Path, skip: str | None = None) -> int:
    """Bytes of every file under ``path`` (a file: its size), ``skip`` left out."""
    if path.is_file():
        return path.stat().st_size
    return sum(
        f.stat().st_size
        for f in path.rglob("*")
        if f.is_file() and not (skip and skip in f.relative_to(path).parts)
    )


def median_ms(call: Any, inputs: list[Any], repeats: int) -> float:
    """Median wall milliseconds of ``call(x)`` over ``inputs[:repeats]``."""
    for x in inputs[:10]:
        call(x)  # warm-up: tracing, allocation
    times = []
    for x in inputs[:repeats]:
        start = time.perf_counter()
        call(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000


def saved_model_row(model, path: Path, names, test, quantize, repeats) -> dict:
    """Exports, reloads with plain TensorFlow, scores and times a SavedModel."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the tokenizer's ops)

    start = time.perf_counter()
    tltf.export_saved_model(model, path, class_names=names, quantize=quantize)
    export_seconds = time.perf_counter() - start
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    probabilities = np.concatenate(
        [
            serve(text=tf.constant(test.texts[i : i + 256]))["probabilities"].numpy()
            for i in range(0, len(test.texts), 256)
        ]
    )
    one = [tf.constant([text]) for text in test.texts]
    return {
        "bytes": folder_bytes(path, skip="token_ids_model"),
        "accuracy": scores(test.labels, probabilities.argmax(-1))[0],
        "latency_ms": median_ms(lambda x: serve(text=x), one, repeats),
        "export_seconds": export_seconds,
        "probabilities": probabilities,
    }


def litert_row(model, path: Path, names, test, quantize, repeats) -> dict:
    """Exports a LiteRT file, runs it with the interpreter on token ids."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    start = time.perf_counter()
    tltf.export_litert(model, path, class_names=names, quantize=quantize)
    export_seconds = time.perf_counter() - start
    runner = Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    preprocess = model.get_layer("preprocess")
    ids = [
        {k: v.numpy() for k, v in preprocess.fixed_length(tf.constant([text])).items()}
        for text in test.texts
    ]
    probabilities = np.concatenate([runner(**x)["probabilities"] for x in ids])
    return {
        "bytes": path.stat().st_size,
        "accuracy": scores(test.labels, probabilities.argmax(-1))[0],
        "latency_ms": median_ms(lambda x: runner(**x), ids, repeats),
        "export_seconds": export_seconds,
        "probabilities": probabilities,
    }


def serve_arm(data_path: Path, quick: bool, workdir: Path) -> dict[str, Any]:
    """Rejection, then the four exports of (d)'s model; run in its own process."""
    settings = Settings.for_quick("d") if quick else Settings()
    data = load_clinc(
        data_path, settings.intents, settings.train_per_intent, settings.eval_per_intent
    )
    oos = out_of_scope(data_path)
    if quick:
        oos = {key: texts[:50] for key, texts in oos.items()}
    model = keras.models.load_model(workdir / "model_d.keras")
    repeats = 30 if quick else 200
    calibration = tltf.calibrate_rejection(
        model, (data.val.texts, data.val.labels), oos_data=oos["oos_val"]
    )
    report = tltf.evaluate(
        model, (data.test.texts, data.test.labels), oos_data=oos["oos_test"]
    )
    keras_probabilities = tltf.predict_classes(model, data.test.texts).probabilities
    rows = {}
    for name, quantize in (("float32", None), ("int8", "int8")):
        for kind, measure, path in (
            ("saved_model", saved_model_row, workdir / f"sm_{name}"),
            ("litert", litert_row, workdir / f"m_{name}.tflite"),
        ):
            try:  # One failed export is a row of the report, not a lost run.
                row = measure(model, path, data.names, data.test, quantize, repeats)
            except tltf.TltfError as err:
                rows[f"{kind}_{name}"] = {"error": str(err)}
                continue
            row["max_abs_diff_vs_keras"] = float(
                np.abs(row.pop("probabilities") - keras_probabilities).max()
            )
            rows[f"{kind}_{name}"] = row
    int8 = workdir / "sm_int8"
    metadata = tltf.read_export_metadata(int8) if int8.exists() else {}
    return {
        "rejection": {
            "threshold": calibration.threshold,
            "temperature": calibration.temperature,
            "ece_before": calibration.ece_before,
            "ece_after": calibration.ece_after,
            "val_out_of_scope_recall": calibration.out_of_scope_recall,
            "test_accuracy": report.accuracy * 100,
            "test_accuracy_without_rejection": report.rejection[
                "accuracy_without_rejection"
            ]
            * 100,
            "test_out_of_scope_recall": report.rejection["out_of_scope_recall"] * 100,
            "export_threshold": metadata.get("rejection", {}).get("threshold"),
        },
        "exports": rows,
        "quantization": metadata.get("quantization"),
    }


def run_child(arm: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Runs one arm (``d``, ``f`` or ``serve``) in a fresh process."""
    out = workdir / f"arm_{arm}.json"
    flags = ["--child", arm, "--workdir", str(workdir), "--data", args.data]
    flags += ["--quick"] if args.quick else []
    flags += ["--threads", str(args.threads)] if args.threads else []
    started = time.perf_counter()
    done = common.run_module("benchmarks.clinc150.compact", *flags)
    print(f"  {arm}: {time.perf_counter() - started:.0f} s, exit {done.returncode}")
    if done.returncode != 0 or not out.exists():
        tail = done.stderr.strip().splitlines()[-12:] or ["no output"]
        return {"error": "\n".join(tail)}
    return json.loads(out.read_text())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = common.parser(__doc__, quick="smoke run, minutes")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="data_full.json")
    parser.add_argument(
        "--keep", help="folder for the models and exports, kept (default: temporary)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        choices=[1, 2],
        default=1,
        help="2: run (d) and (f) side by side, each in its own process (with "
        "--threads 1 on a 2-core machine: half the wall time)",
    )
    parser.add_argument("--child", choices=["d", "f", "serve"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not Path(args.data).is_file():
        parser.error(f"CLINC150 not found at {args.data}: pass --data.")
    return args


def main(argv: list[str] | None = None) -> None:
    """Runs (d), (f) and the serving measurements, then writes the report."""
    args = parse_args(argv)
    threads = common.set_threads(args.threads)
    if args.child:  # a child process of run_child
        workdir, data = Path(args.workdir), Path(args.data)
        if args.child == "serve":
            result = serve_arm(data, args.quick, workdir)
        else:
            result = train_arm(args.child, data, args.quick, workdir)
        (workdir / f"arm_{args.child}.json").write_text(json.dumps(result))
        return
    started = time.time()
    info = common.machine(started, libraries=LIBRARIES)
    info["TensorFlow threads"] = threads
    output = common.output_path(args.output, HERE, "RESULTS-compact.md", args.quick)
    print(f"CLINC150 LoRA and compact serving, started {info['date (UTC)']}")
    with tempfile.TemporaryDirectory(prefix="tltf-compact-") as tmp:
        workdir = Path(args.keep or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            trained = dict(
                zip("df", pool.map(lambda a: run_child(a, args, workdir), "df"))
            )
        results = {**trained, "serve": run_child("serve", args, workdir)}
    common.finish(info, started)
    settings = Settings.for_quick("d") if args.quick else Settings()
    config = {
        "sequence_length": settings.sequence_length,
        "epochs": settings.epochs,
        "lora_rank": LORA_RANK,
        "quick": args.quick,
    }
    command = "python -m benchmarks.clinc150.compact" + " --quick" * args.quick
    command += f" --jobs {args.jobs}" * (args.jobs > 1)
    renderer = __package__ + ".compact_report"
    common.save_run(output, common.new_record(renderer, command, config, results, info))


if __name__ == "__main__":
    main()
