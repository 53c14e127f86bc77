"""Scale: image folders of 2,000 to 100,000 files and a 1,000,000-row CSV.

Usage::

    python benchmarks/scale.py            # the full run (about 6 min, 2 cores)
    python benchmarks/scale.py --quick    # smoke run: 500 and 2,000 images

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
write, and passes over the training split once. Results go to
``benchmarks/RESULTS-scale.md``, written once, at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
# Goals of issue 19.
SCAN_LIMIT = 2.0  # tltf's scan per file within 2x of Keras's loader.
FLAT_LIMIT = 1.25  # Per-example growth tolerated from one size to the next.
PER_FILE_LIMIT = 2_000  # Peak bytes per file beyond the budget (the file list).


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
    done = subprocess.run(
        [sys.executable, __file__, "--worker", arm, str(source)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- report ---


def per(value: float, n: int) -> float:
    return value / max(n, 1)


def goals(results: dict[str, Any], sizes: tuple[int, ...]) -> list[list[str]]:
    rows = []
    scan_ratios = []
    for n in sizes:
        t, k = results[n]["tltf"], results[n]["keras"]
        if "error" in t or "error" in k:
            continue
        scan_ratios.append((n, t["load_s"] / k["load_s"]))
    worst = max(scan_ratios, key=lambda x: x[1]) if scan_ratios else None
    rows.append(
        [
            f"scan per file within {SCAN_LIMIT:.0f}x of Keras's loader at every N",
            ", ".join(f"N={n:,}: {r:.2f}x" for n, r in scan_ratios),
            _met(worst is not None and worst[1] <= SCAN_LIMIT),
        ]
    )
    firsts = [
        (n, per(results[n]["tltf"]["passes_s"][0], results[n]["tltf"]["train_seen"][0]))
        for n in sizes
        if "error" not in results[n]["tltf"]
    ]
    steps = [b / a for (_, a), (_, b) in zip(firsts, firsts[1:])]
    rows.append(
        [
            "first-pass time per example flat in N (no step to a larger N costs "
            f"more than {FLAT_LIMIT}x per example)",
            ", ".join(f"N={n:,}: {v * 1e6:.0f} us" for n, v in firsts),
            _met(bool(steps) and max(steps) <= FLAT_LIMIT),
        ]
    )
    rows.append(memory_goal(results, sizes))
    exact = all(
        results[n]["tltf"].get("skipped") == results[n]["broken"]
        and results[n]["tltf"]["train_seen"][0] + results[n]["tltf"]["val_seen"]
        == n - results[n]["broken_images"]
        for n in sizes
    )
    rows.append(
        [
            "nothing skipped that decodes; every broken file skipped and listed",
            "skipped list == planted files, and every other image yielded, at every N",
            _met(exact),
        ]
    )
    return rows


def memory_goal(results: dict[str, Any], sizes: tuple[int, ...]) -> list[str]:
    """Peak growth per added file between the sizes beyond the cache budget."""
    beyond = [
        n
        for n in sizes
        if n * _per_image_bytes() > BUDGET
        and not any("error" in results[n][arm] for arm in ("tltf", "keras"))
    ]
    goal = (
        "peak memory flat once the cache budget is reached: per file added "
        f"beyond it, at most {PER_FILE_LIMIT / 1e3:.0f} KB (the file list; a "
        f"memory cache would add {_per_image_bytes() / 1e3:.1f} KB)"
    )
    if len(beyond) < 2:
        return [goal, "fewer than two sizes beyond the budget", "not measured"]
    first, last = beyond[0], beyond[-1]

    def per_file(arm: str) -> float:
        grown = [
            results[n][arm]["peak_rss"] - results[n][arm]["start_rss"]
            for n in (first, last)
        ]
        return (grown[1] - grown[0]) / (last - first)

    tltf_kb, keras_kb = per_file("tltf"), per_file("keras")
    measured = (
        f"N={first:,} to {last:,}: tltf +{tltf_kb / 1e3:.2f} KB per file "
        f"(Keras's loader +{keras_kb / 1e3:.2f} KB)"
    )
    return [goal, measured, _met(tltf_kb <= PER_FILE_LIMIT)]


def _per_image_bytes() -> int:
    return IMAGE_SIZE[0] * IMAGE_SIZE[1] * 3 + 256


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows]


def image_rows(results: dict[str, Any], sizes: tuple[int, ...]) -> list[list[str]]:
    rows = []
    for n in sizes:
        for arm in ("tltf", "keras"):
            r = results[n][arm]
            if "error" in r:
                rows.append(
                    [f"{n:,}", arm, "failed: " + " ".join(r["error"])] + [""] * 6
                )
                continue
            first, second = r["passes_s"]
            seen = r["train_seen"][0]
            rows.append(
                [
                    f"{n:,}",
                    arm,
                    f"{per(r['load_s'], n) * 1e6:.1f} us ({r['load_s']:.2f} s)",
                    f"{per(first, seen) * 1e6:.0f} us ({first:.1f} s)",
                    f"{per(second, r['train_seen'][1]) * 1e6:.0f} us",
                    f"{seen:,} + {r['val_seen']:,}",
                    f"{r['peak_rss'] / 1e6:.0f} MB",
                    f"{(r['peak_rss'] - r['start_rss']) / 1e6:.0f} MB",
                    str(len(r["skipped"]))
                    if r["skipped"] is not None
                    else "not listed",
                ]
            )
    return rows


def csv_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for arm in ("tltf-csv", "pandas-csv"):
        r = results["csv"][arm]
        if "error" in r:
            rows.append([arm, "failed: " + " ".join(r["error"]), "", "", "", ""])
            continue
        seen, first = r["train_seen"][0], r["passes_s"][0]
        rows.append(
            [
                arm,
                f"{r['load_s']:.1f} s",
                f"{per(first, seen) * 1e6:.1f} us ({first:.1f} s)",
                f"{(r['load_rss'] - r['start_rss']) / 1e6:.0f} MB",
                f"{(r['peak_rss'] - r['start_rss']) / 1e6:.0f} MB",
                f"{r['peak_rss'] / 1e6:.0f} MB",
            ]
        )
    return rows


def render(results: dict[str, Any], sizes: tuple[int, ...], info: dict) -> str:
    lines = [
        "# Scale: large image folders and a large CSV",
        "",
        "Written by `benchmarks/scale.py` from one run; every arm ran in its own "
        "subprocess (peak = that process's maximum resident memory).",
        "",
        "## Goals (issue 19)",
        "",
        *table(["goal", "measured", "result"], goals(results, sizes)),
        "",
        "## Image folders (64x64 JPEGs, 10 classes, validation split 0.2)",
        "",
        f'tltf: `image_folder` defaults (`cache="auto"`), cache budget '
        f"{BUDGET / 1e6:.0f} MB (`tltf.data.set_cache_budget`). Keras: "
        '`image_dataset_from_directory(..., subset="both")` + `.ignore_errors()`, '
        "no cache. Each folder holds "
        f"{BROKEN['truncated']} truncated JPEGs, {BROKEN['garbage']} JPEG with a "
        f"garbage body and {BROKEN['not_image']} non-image files. Files were "
        "written just before the run (warm page cache for both arms).",
        "",
        *table(
            [
                "N files",
                "arm",
                "scan per file (loader call)",
                "first pass per example",
                "second pass per example",
                "examples (train + val)",
                "peak RSS",
                "peak growth after imports",
                "skipped listed",
            ],
            image_rows(results, sizes),
        ),
        "",
        f"## CSV ({results['csv']['rows']:,} rows, "
        f"{results['csv']['bytes'] / 1e6:.0f} MB; 20 labels)",
        "",
        "tltf: `text_csv` defaults (validation split 0.2, one pass over the "
        "training split). Baseline: `pandas.read_csv` + `from_tensor_slices` + "
        "`shuffle(len)`.",
        "",
        *table(
            [
                "arm",
                "load",
                "first pass per example",
                "memory after load",
                "peak growth after imports",
                "peak RSS",
            ],
            csv_rows(results),
        ),
        "",
        "## Run",
        "",
        *[f"- {key}: {value}" for key, value in info.items()],
        "",
    ]
    return "\n".join(lines)


# --- main ---


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("ARM", "SOURCE"))
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    from tltf.files import write_text

    sizes = QUICK_SIZES if args.quick else SIZES
    rows = 20_000 if args.quick else CSV_ROWS
    default = Path(tempfile.gettempdir()) / "RESULTS-scale-quick.md"
    output = (
        Path(args.output)
        if args.output
        else (default if args.quick else HERE / "RESULTS-scale.md")
    )
    started = time.time()
    results: dict[Any, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tltf-scale-") as tmp:
        for n in sizes:
            root = Path(tmp) / f"images-{n}"
            made = time.perf_counter()
            broken = make_folder(root, n)
            print(f"N={n}: wrote in {time.perf_counter() - made:.1f} s", flush=True)
            results[n] = {
                "broken": broken,
                "broken_images": BROKEN["truncated"] + BROKEN["garbage"],
            }
            for arm in ("tltf", "keras"):
                results[n][arm] = run_arm(arm, root)
                print(n, arm, results[n][arm], flush=True)
            shutil.rmtree(root, ignore_errors=True)
        csv = Path(tmp) / "rows.csv"
        make_csv(csv, rows)
        results["csv"] = {"rows": rows, "bytes": csv.stat().st_size}
        for arm in ("tltf-csv", "pandas-csv"):
            results["csv"][arm] = run_arm(arm, csv)
            print(arm, results["csv"][arm], flush=True)
    info = {
        "date (UTC)": time.strftime("%Y-%m-%d %H:%M", time.gmtime(started)),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}",
        "load average (1 min) at end": f"{os.getloadavg()[0]:.2f} (other jobs "
        "share the 2 cores: timings are noisy)",
        "total wall time": f"{(time.time() - started) / 60:.1f} min",
    }
    text = render(results, sizes, info)
    write_text(output, text)
    print(text)
    print(f"Wrote {output}")


if __name__ == "__main__":
    main()
