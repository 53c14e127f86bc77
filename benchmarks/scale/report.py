"""Turns a record of `run.py` into goals and the scale report."""

from __future__ import annotations

from typing import Any

from benchmarks.common import Goal, goals_table, machine_section, note_lines, table

SCAN_LIMIT = 2.0  # tltf's scan per file within 2x of Keras's loader.
FLAT_LIMIT = 1.25  # Per-example growth tolerated from one size to the next.
PER_FILE_LIMIT = 2_000  # Peak bytes per file beyond the budget (the file list).


def per(value: float, n: int) -> float:
    return value / max(n, 1)


def _ok(folder: dict[str, Any], *arms: str) -> bool:
    return not any("error" in folder[arm] for arm in arms)


# --- goals ---


def goals(results: dict[str, Any], cfg: dict[str, Any]) -> list[Goal]:
    """(goal, target, measured, met): scan, first pass, memory, broken files."""
    folders = results["folders"]
    scans = [
        (f["files"], f["tltf"]["load_s"] / f["keras"]["load_s"])
        for f in folders
        if _ok(f, "tltf", "keras")
    ]
    firsts = [
        (f["files"], per(f["tltf"]["passes_s"][0], f["tltf"]["train_seen"][0]))
        for f in folders
        if _ok(f, "tltf")
    ]
    steps = [b / a for (_, a), (_, b) in zip(firsts, firsts[1:])]
    return [
        (
            "scan per file (the loader call) vs Keras's loader, at every N",
            f"<= {SCAN_LIMIT:.0f}x",
            ", ".join(f"N={n:,}: {r:.2f}x" for n, r in scans),
            bool(scans) and max(r for _, r in scans) <= SCAN_LIMIT,
        ),
        (
            "first-pass time per example flat in N: growth per example from "
            "one N to the next",
            f"<= {FLAT_LIMIT}x",
            ", ".join(f"N={n:,}: {v * 1e6:.0f} us" for n, v in firsts),
            bool(steps) and max(steps) <= FLAT_LIMIT,
        ),
        memory_goal(results, cfg),
        (
            "nothing skipped that decodes; every broken file skipped and listed",
            "skipped == planted, every other image yielded",
            "; ".join(_yielded(f) for f in folders if _ok(f, "tltf")),
            all(_exact(f) for f in folders),
        ),
    ]


def _exact(folder: dict[str, Any]) -> bool:
    t = folder["tltf"]
    yielded = t["train_seen"][0] + t["val_seen"]
    return t["skipped"] == folder["broken"] and (
        yielded == folder["files"] - folder["broken_images"]
    )


def _yielded(folder: dict[str, Any]) -> str:
    t, planted = folder["tltf"], folder["broken"]
    listed = len(set(t["skipped"] or ()) & set(planted))
    others = len(set(t["skipped"] or ()) - set(planted))
    yielded = t["train_seen"][0] + t["val_seen"]
    decodable = folder["files"] - folder["broken_images"]
    return (
        f"N={folder['files']:,}: {listed} of {len(planted)} planted listed"
        + (f" and {others} others" if others else "")
        + f", {yielded:,} of {decodable:,} yielded"
    )


def memory_goal(results: dict[str, Any], cfg: dict[str, Any]) -> Goal:
    """Peak growth per added file between the sizes beyond the cache budget."""
    image = _per_image_bytes(cfg)
    beyond = [
        f
        for f in results["folders"]
        if f["files"] * image > cfg["budget"] and _ok(f, "tltf", "keras")
    ]
    goal = (
        "peak memory flat once the cache budget is reached: per file added "
        f"beyond it (the file list; a memory cache would add {image / 1e3:.1f} KB)"
    )
    target = f"<= {PER_FILE_LIMIT / 1e3:.0f} KB"
    if len(beyond) < 2:
        return goal, target, "fewer than two sizes beyond the budget", None
    first, last = beyond[0], beyond[-1]

    def per_file(arm: str) -> float:
        grown = [f[arm]["peak_rss"] - f[arm]["start_rss"] for f in (first, last)]
        return (grown[1] - grown[0]) / (last["files"] - first["files"])

    tltf_kb, keras_kb = per_file("tltf"), per_file("keras")
    measured = (
        f"N={first['files']:,} to {last['files']:,}: tltf +{tltf_kb / 1e3:.2f} KB "
        f"per file (Keras's loader +{keras_kb / 1e3:.2f} KB)"
    )
    return goal, target, measured, tltf_kb <= PER_FILE_LIMIT


def _per_image_bytes(cfg: dict[str, Any]) -> int:
    """What a decoded image costs in a memory cache (pixels and overhead)."""
    height, width = cfg["image_size"]
    return height * width * 3 + 256


# --- tables ---


def image_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for folder in results["folders"]:
        n = folder["files"]
        for arm in ("tltf", "keras"):
            r = folder[arm]
            if "error" in r:
                rows.append([f"{n:,}", arm, "failed: " + " ".join(r["error"])])
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
            rows.append([arm, "failed: " + " ".join(r["error"])])
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


# --- the report ---


def render(record: dict[str, Any]) -> str:
    """The whole report of a `run.py` record."""
    results, cfg = record["results"], record["config"]
    broken = cfg["broken"]
    height, width = cfg["image_size"]
    lines = [
        "# Scale: large image folders and a large CSV",
        "",
        f"Written by `{record['command']}` from one run; every arm ran in its "
        "own subprocess (peak = that process's maximum resident memory). The "
        "figures are in the JSON record beside this file.",
        "",
        *note_lines(record),
        "## Goals",
        "",
        *goals_table(goals(results, cfg)),
        "",
        f"## Image folders ({height}x{width} JPEGs, {cfg['classes']} classes, "
        "validation split 0.2)",
        "",
        f'tltf: `image_folder` defaults (`cache="auto"`), cache budget '
        f"{cfg['budget'] / 1e6:.0f} MB (`tltf.data.set_cache_budget`). Keras: "
        '`image_dataset_from_directory(..., subset="both")` + `.ignore_errors()`, '
        "no cache. Each folder holds "
        f"{broken['truncated']} truncated JPEGs, {broken['garbage']} JPEG with a "
        f"garbage body and {broken['not_image']} non-image files. Files were "
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
            image_rows(results),
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
        *machine_section(record["machine"]),
    ]
    return "\n".join(lines)
