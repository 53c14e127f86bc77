"""Scale: image folders of 2,000 to 100,000 files and a 1,000,000-row CSV.

Usage (from the repository root)::

    python -m benchmarks.scale.run            # the full run (3 to 6 min, 2 cores)
    python -m benchmarks.scale.run --quick    # smoke run: 500 and 2,000 images

For each folder size N, synthetic 64x64 JPEGs in 10 class folders (under
the temporary folder, never in the repository), with broken files planted
at the start, middle and end of the sorted order: truncated JPEGs (a valid
header, the body cut), a JPEG with a garbage body, and non-image files.
Two arms, each in a fresh subprocess (so that arms do not share a peak):

- ``tltf``: `tltf.data.image_folder` with its defaults (``cache="auto"``)
  and a cache budget of `BUDGET` bytes, so that the smallest folder is
  cached in memory and the larger ones go to disk;
- ``keras``: ``keras.utils.image_dataset_from_directory`` with the same
  image size, batch size and split, plus ``.ignore_errors()`` (without it,
  the first broken JPEG stops the epoch; with it, Keras drops the whole
  batch that holds one, silently).

Measured: the loader call (scanning the folder) per file, the first and
second pass over the training split per example, the peak resident memory
of the subprocess (and its growth over the process after imports), and how
many examples each arm yields. The CSV arm loads a 1,000,000-row file with
`tltf.data.text_csv` and with the plain pandas + ``tf.data`` code users
write, and passes over the training split once. The record
(``RESULTS.json``) and the report (``RESULTS.md``, `report.py`) are written
once, at the end.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import common

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
SIZES = (2_000, 20_000, 100_000)
QUICK_SIZES = (500, 2_000)
CSV_ROWS = 1_000_000
BUDGET = 64 * 10**6  # The tltf arm's cache budget: 64 MB.
IMAGE_SIZE = (64, 64)
BATCH = 32
CLASSES = 10
# Per folder: truncated JPEGs, garbage-body JPEGs and non-image files.
BROKEN = {"truncated": 3, "garbage": 1, "not_image": 2}


# --- data ---


def make_folder(root: Path, n: int) -> list[str]:
    """Writes ``n`` JPEGs in ``CLASSES`` folders; returns the broken files."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    bases = []
    for k in range(CLASSES):
        pixels = rng.uniform(0, 255, (*IMAGE_SIZE, 3))
        pixels[..., k % 3] = 40 + 20 * k
        bases.append(tf.io.encode_jpeg(pixels.astype("uint8"), quality=90).numpy())
    for k in range(CLASSES):
        (root / f"class{k}").mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        k = i % CLASSES
        jpeg = bases[k]
        # A comment segment makes every file distinct (decodes the same).
        comment = b"\xff\xfe\x00\x0a" + i.to_bytes(8, "big")
        name = f"class{k}/{i:07d}.jpg"
        (root / name).write_bytes(jpeg[:2] + comment + jpeg[2:])
        names.append(name)
    return plant(root, sorted(names), bases[0])


def plant(root: Path, names: list[str], jpeg: bytes) -> list[str]:
    """Breaks files at the start, middle and end of the sorted order."""
    count = sum(BROKEN.values()) - BROKEN["not_image"]
    spots = [names[0], names[len(names) // 2], names[-1], names[len(names) // 3]]
    broken = []
    for spot, kind in zip(spots[:count], ["truncated"] * 3 + ["garbage"]):
        body = jpeg[: len(jpeg) // 2]
        if kind == "garbage":
            body = jpeg[:20] + b"\0" * 200 + b"\xff\xd9"
        (root / spot).write_bytes(body)
        broken.append(spot)
    for k in range(BROKEN["not_image"]):
        name = f"class{k}/notes{k}.txt"
        (root / name).write_text("not an image")
        broken.append(name)
    return sorted(broken)


def make_csv(path: Path, rows: int) -> None:
    words = [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "epsilon",
        "zeta",
        "eta",
        "theta",
        "iota",
        "kappa",
    ]
    draw = random.Random(0)
    with open(path, "w") as f:
        f.write("text,label\n")
        for i in range(rows):
            text = " ".join(draw.choices(words, k=10))
            f.write(f"{text} {i},intent{i % 20}\n")


# --- one arm, in its own process ---


def worker(arm: str, source: str) -> dict[str, Any]:
    """Runs one arm on one folder or CSV; returns its measurements."""
    import psutil

    def now_rss() -> int:
        return psutil.Process().memory_info().rss

    import keras
    import tensorflow as tf

    import tltf

    start_rss = now_rss()
    started = time.perf_counter()
    if arm == "tltf":
        tltf.data.set_cache_budget(BUDGET)
        data = tltf.data.image_folder(source, image_size=IMAGE_SIZE, batch_size=BATCH)
        train, val, skipped = data.train, data.validation, data.skipped
    elif arm == "keras":
        train, val = keras.utils.image_dataset_from_directory(
            source,
            image_size=IMAGE_SIZE,
            batch_size=BATCH,
            validation_split=0.2,
            subset="both",
            seed=1337,
            verbose=False,
        )
        train, val, skipped = train.ignore_errors(), val.ignore_errors(), None
    elif arm == "tltf-csv":
        data = tltf.data.text_csv(source, batch_size=BATCH)
        train, val, skipped = data.train, data.validation, data.skipped
    else:  # "pandas-csv": what users write by hand.
        import pandas as pd

        frame = pd.read_csv(source)
        labels = frame["label"].astype("category").cat.codes.to_numpy("int64")
        texts = frame["text"].to_numpy(str)
        del frame
        train = (
            tf.data.Dataset.from_tensor_slices((texts, labels))
            .shuffle(len(texts), seed=1337)
            .batch(BATCH)
            .prefetch(tf.data.AUTOTUNE)
        )
        val, skipped = None, None
    load = time.perf_counter() - started
    load_rss = now_rss()
    passes, counts = [], []
    for _ in range(2):
        started, seen = time.perf_counter(), 0
        for _, y in train:
            seen += int(y.shape[0])
        passes.append(time.perf_counter() - started)
        counts.append(seen)
        if arm.endswith("csv"):
            break
    val_seen = sum(int(y.shape[0]) for _, y in val) if val is not None else 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "load_s": load,
        "passes_s": passes,
        "train_seen": counts,
        "val_seen": val_seen,
        "skipped": sorted(skipped) if skipped is not None else None,
        "start_rss": start_rss,
        "load_rss": load_rss,
        "peak_rss": peak,
    }


def run_arm(arm: str, source: Path) -> dict[str, Any]:
    """One arm in a fresh process: its figures, or the last line of its error."""
    done = common.run_module("benchmarks.scale.run", "--worker", arm, str(source))
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def folder_results(root: Path, n: int) -> dict[str, Any]:
    """Writes a folder of ``n`` images, runs both arms on it, removes it."""
    made = time.perf_counter()
    broken = make_folder(root, n)
    print(f"N={n}: wrote in {time.perf_counter() - made:.1f} s", flush=True)
    out = {
        "files": n,
        "broken": broken,
        "broken_images": BROKEN["truncated"] + BROKEN["garbage"],
    }
    for arm in ("tltf", "keras"):
        out[arm] = run_arm(arm, root)
        print(n, arm, out[arm], flush=True)
    shutil.rmtree(root, ignore_errors=True)
    return out


def config(sizes: tuple[int, ...], rows: int) -> dict[str, Any]:
    """The settings the report quotes."""
    return {
        "sizes": list(sizes),
        "csv_rows": rows,
        "budget": BUDGET,
        "image_size": list(IMAGE_SIZE),
        "batch_size": BATCH,
        "classes": CLASSES,
        "broken": BROKEN,
    }


# --- main ---


def main(argv: list[str] | None = None) -> None:
    """Runs every arm on every folder and the CSV, then writes the report."""
    parser = common.parser(__doc__, quick="smoke run: 500 and 2,000 images")
    parser.add_argument("--worker", nargs=2, metavar=("ARM", "SOURCE"))
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    sizes = QUICK_SIZES if args.quick else SIZES
    rows = 20_000 if args.quick else CSV_ROWS
    output = common.output_path(args.output, HERE, "RESULTS.md", args.quick)
    started = time.time()
    info = common.machine(started, libraries={"pandas": "pandas"})
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tltf-scale-") as tmp:
        folders = [folder_results(Path(tmp) / f"images-{n}", n) for n in sizes]
        results["folders"] = folders
        csv = Path(tmp) / "rows.csv"
        make_csv(csv, rows)
        results["csv"] = {"rows": rows, "bytes": csv.stat().st_size}
        for arm in ("tltf-csv", "pandas-csv"):
            results["csv"][arm] = run_arm(arm, csv)
            print(arm, results["csv"][arm], flush=True)
    common.finish(info, started)
    command = "python -m benchmarks.scale.run" + " --quick" * args.quick
    cfg = config(sizes, rows)
    record = common.new_record(__package__ + ".report", command, cfg, results, info)
    common.save_run(output, record)


if __name__ == "__main__":
    main()
