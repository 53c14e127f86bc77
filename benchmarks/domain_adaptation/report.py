"""Turns a record of `run.py` into the goals and the domain-adaptation report."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks import common
from benchmarks.common import Goal

IMAGES = ("M->U", "U->M", "textured")
GAP_GOAL = 60.0  # % of the source-only -> oracle gap closed, per image shift
TEXT_MEAN_GOAL = 2.0  # points over source only, mean of the 12 pairs
TEXT_PAIR_GOAL = -1.0  # no pair further below source only
SOURCE_GOAL = -1.0  # points of source test accuracy the default may lose
STEP_GOAL = 1.5  # MCC step / fit step on the same images
AUTO_GOAL = 2.0  # what weight="auto" adds, in adaptation runs

#: Transfer-Learning-Library's digits tables (LeNet, 50,000 iterations of
#: 128 + 128 images, the best epoch picked on the target test set).
PUBLISHED = {"M->U": (82.1, 95.1), "U->M": (74.6, 94.6)}

#: The trials behind the defaults (scripts kept outside the repository;
#: figures as they were measured, target test %, means of the seeds run).
TRIALS = [
    "Reproduction of TLlib's MCC, its recipe at batch 128 + 128 for 800 "
    "iterations (TLlib: 50,000), one seed, last iterate: M->U source only "
    "71.9 -> MCC 90.7 (TLlib 82.1 -> 95.1; our MNIST source is the 6,000 "
    "images split off MNIST's test set, TLlib's is 60,000), U->M 77.0 -> "
    "92.2 (TLlib 74.6 -> 94.6).",
    "The same recipe at batch 32 + 32, 1,200 steps, two seeds: M->U 71.0 -> "
    "89.1 (oracle 96.1: 72% of the gap), U->M 74.9 -> 94.8 (oracle 98.0: "
    "86%), textured 22.4 -> 34.4 (oracle 96.0: 16%). On the same runs DANN "
    "(TLlib's BN discriminator) reached 86.0 / 92.1 / 39.8 at 1.3x MCC's "
    "step; MCC at weight 0.3 / 3: 84.9 / 89.6 (M->U), 88.5 / 92.9 (U->M), "
    "38.0 / 30.0 (textured).",
    "Textured digits, what else was tried (one or two seeds): separate BatchNorm "
    "passes per domain 42.4, source only with target BatchNorm statistics "
    "(AdaBN) 40.4, mean teacher (French et al. 2018) 38.5, MCC + mean "
    "teacher 41.5, a LeNet with BatchNorm after every layer 35.0: none "
    "closes more than 27% of the gap to the oracle's 96.",
    "A frozen base pretrained on other digits, only the head adapting: MCC "
    "closes 52% (U->M) and 67% (M->U) of the gap with a BatchNorm "
    "bottleneck in the head, 35% and 51% with tltf's plain hidden layer.",
    "Amazon pairs, frozen MiniLM features, head (256) trained with Adam, "
    "three seeds: source only 75.41, oracle 82.47; MMD weight 1 77.14 "
    "(+1.73, worst pair +0.5); MCC weight 1 76.31 (+0.90, three pairs more "
    "than a point below source only: binary MCC drifts towards one class); "
    "centring each domain's features 76.36; CORAL 75.20.",
    "The criterion: the entropy of the target's predicted-class shares ranked "
    "an adapted run below source only exactly when its target accuracy "
    "was lower on 27 of 27 image runs and on 74% of 180 text runs; source "
    "validation accuracy agreed on 11 of 27 image runs, and on text it, "
    "prediction entropy, information maximisation, DEV and reverse "
    "validation were near chance (51-57%).",
    "Amazon, the head-only trials behind the default for two classes, each "
    "through `adapt_domain` with the benchmark's head, 20 epochs, 3 seeds, "
    "judged on the targets' labelled validation parts (200 reviews per "
    "domain; test was not used to choose): mean over the 12 pairs of target "
    "validation accuracy minus source only's, the worst pair in brackets. "
    "MCC weight 1 (the default before) +1.89 (kitchen -> books -4.33), with "
    "the check +1.47; MMD weight 1 +2.56 (-2.33), with the check +2.01; the "
    "method the criterion picks from MCC and MMD +2.31 (-2.33); "
    "class-balanced self-training (Zou et al. 2018: the source-only model "
    "labels the most confident half of the target's training reviews, each "
    "class in its share of the source labels, 86% of them right; then MMD on "
    "the source and those reviews) +2.15 (-2.50), with the check +2.01; the "
    "same with the MMD-adapted model as the labeller (two runs) +2.63 "
    "(-3.17), with the check +2.29: the highest with and without the check, "
    'so it became the default for two classes (`method="auto"`). Binary '
    "MCC drifts: on kitchen -> dvd, where the source-only model predicts "
    "only a third of the dvd reviews positive, it made the predictions more "
    "confident and more balanced without making them right (-3.33 on test "
    "in the run before). On validation every MMD-based arm still loses "
    "2.3-3.2 points on kitchen -> books while its predictions stay "
    "balanced, so the check cannot see it; at 200 to 400 reviews a pair's "
    "difference moves by 3 to 6 points between two samples of one domain.",
    "Amazon, the next step (a base that adapts), measured on one seed: "
    "fine-tuning MiniLM's top transformer layer with the head (its input "
    "cached, cheaper than LoRA through all six layers), 200 steps, "
    "validation (test): kitchen -> dvd 73.0 (75.0) source only -> 80.0 "
    "(74.5) MMD; kitchen -> books 75.5 (76.0) -> 76.5 (76.0), where the "
    "head-only MMD lost 4.0 on validation with this seed. An MMD step "
    "costs 1.8-2.0 CPU seconds there against about 3 ms for the head "
    "alone: the benchmark's text runs (12 pairs, 3 seeds, five runs of 880 "
    "steps) would take about 65 hours on one thread, and LoRA through the "
    "whole encoder about four times as long (a full forward and backward "
    "pass: 6.4 s per 32 reviews measured). Two runs of one seed do not "
    "show that it closes the worst-pair goal, and the benchmark that would "
    "show it is out of this machine's reach; the head-only default met "
    "both text goals without it.",
]


#: For each missed goal: what was tried, and why the next trial is unlikely
#: to close it (issue 28's "done when").
MISSED = [
    "Textured digits (goal 60%): every recipe tried closes 15-27% of the gap "
    "(the trials below: MCC in one joint pass or separate BatchNorm passes, "
    "AdaBN, mean teacher, MCC + mean teacher, BatchNorm throughout). The "
    "target's colour textures change the low-level statistics that a LeNet "
    "trained from scratch on 1,197 grey digits learns, and methods that "
    "act on the predictions or the last features do not undo that; what "
    "would (greyscale or per-image standardised inputs, colour "
    "augmentation) removes the shift by construction rather than adapting "
    "to it, and TLlib's 40x longer training is out of this machine's reach.",
]


# --- reading the figures ---


def seeds(record: dict, task: str) -> list[dict]:
    """A shift's per-seed outcomes that did not fail."""
    every = record["results"]["tasks"].get(task, {}).get("seeds", [])
    return [s for s in every if "error" not in s]


def mean(record: dict, task: str, arm: str, field: str = "target") -> float | None:
    values = [s[arm][field] for s in seeds(record, task) if arm in s]
    return float(np.mean(values)) if values else None


def gap(record: dict, task: str, arm: str = "default") -> float | None:
    """% of the source-only -> oracle gap an arm closes (means over seeds)."""
    source, oracle = mean(record, task, "source_only"), mean(record, task, "oracle")
    value = mean(record, task, arm)
    if None in (source, oracle, value) or oracle <= source:
        return None
    return (value - source) / (oracle - source) * 100


def kept_source(record: dict, task: str, arm: str = "default") -> int:
    """How many seeds' check kept the source-only model."""
    return sum(
        1
        for s in seeds(record, task)
        if arm in s and (s[arm].get("check") or {}).get("kept") == "source_only"
    )


def text_tasks(record: dict) -> list[str]:
    tasks = record["results"]["tasks"]
    return [name for name, t in tasks.items() if t["kind"] == "text"]


def text_deltas(record: dict, arm: str = "default") -> dict[str, float]:
    """Per pair: the arm's mean target accuracy minus source only's."""
    out = {}
    for name in text_tasks(record):
        value, source = mean(record, name, arm), mean(record, name, "source_only")
        if value is not None and source is not None:
            out[name] = value - source
    return out


def text_mean(record: dict, arm: str, field: str = "target") -> float | None:
    values = [mean(record, name, arm, field) for name in text_tasks(record)]
    return float(np.mean(values)) if values and None not in values else None


def source_drops(record: dict) -> dict[str, float]:
    """Per shift (the text pairs pooled): default's source accuracy - source only's."""
    out = {}
    for name in IMAGES:
        value, base = (
            mean(record, name, "default", "source"),
            mean(record, name, "source_only", "source"),
        )
        if value is not None and base is not None:
            out[name] = value - base
    text, base = (
        text_mean(record, "default", "source"),
        text_mean(record, "source_only", "source"),
    )
    if text is not None and base is not None:
        out["Amazon (mean)"] = text - base
    return out


def step_ratio(record: dict) -> float | None:
    steps = record["results"].get("steps", {})
    seconds = steps.get("median_seconds")
    return seconds["mcc"] / seconds["fit_2x"] if seconds else None


def auto_extra(record: dict) -> float | None:
    """What weight="auto" adds, in default adaptation runs (text, means)."""
    auto, default = (
        text_mean(record, "auto", "seconds"),
        text_mean(record, "default", "seconds"),
    )
    if auto is None or not default:
        return None
    return (auto - default) / default


# --- goals ---


def fmt(value: float | None, digits: int = 1, unit: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def _lowest(
    name: str, target: str, values: dict[str, float], goal: float, note: str = ""
) -> Goal:
    """A goal row held by the lowest of ``values`` (named, with ``note``)."""
    if not values:
        return (name, target, "-", None)
    key, low = min(values.items(), key=lambda kv: kv[1])
    return (name, target, f"{low:+.2f} ({key}{note})", low >= goal)


def _measured(
    name: str, value: float | None, unit: str, digits: int, bound: str
) -> Goal:
    """A goal row of one measured ``value`` against ``bound``.

    ``bound`` is the target as it reads (``">= 60"``, ``"<= 1.5"``; the unit
    follows it), and decides the row: ``-`` and unknown when ``value`` is
    missing.
    """
    sign, limit = bound.split()
    held = None
    if value is not None:
        held = value >= float(limit) if sign == ">=" else value <= float(limit)
    return (name, f"{bound}{unit}", fmt(value, digits, unit), held)


def goals(record: dict) -> list[Goal]:
    rows: list[Goal] = []
    for name in IMAGES:
        closed = gap(record, name)
        title = f"{name}: the default closes the gap to the oracle"
        rows.append(_measured(title, closed, "%", 0, f">= {GAP_GOAL:.0f}"))
    deltas = text_deltas(record)
    delta = float(np.mean(list(deltas.values()))) if deltas else None
    mean = "Amazon, 12 pairs: mean target accuracy over source only"
    step = "an MCC step against a `fit` step on the same images"
    auto = '`weight="auto"` adds at most 2 adaptation runs (text, wall time)'
    rows += [
        _measured(mean, delta, " points", 2, f">= +{TEXT_MEAN_GOAL:.0f}"),
        _lowest(
            "Amazon: no pair more than 1 point below source only",
            f">= {TEXT_PAIR_GOAL:.0f} point",
            deltas,
            TEXT_PAIR_GOAL,
        ),
        _lowest(
            "source test accuracy within 1 point of source only, every shift",
            f">= {SOURCE_GOAL:.0f} point",
            source_drops(record),
            SOURCE_GOAL,
            ", the lowest",
        ),
        _measured(step, step_ratio(record), "x", 2, f"<= {STEP_GOAL}"),
        _measured(auto, auto_extra(record), " runs", 2, f"<= {AUTO_GOAL:.0f}"),
    ]
    return rows


# --- tables ---


def image_table(record: dict) -> list[str]:
    rows = []
    for name in IMAGES:
        if not seeds(record, name):
            continue
        published = PUBLISHED.get(name)
        rows.append(
            [
                name,
                common.mean_sd(_values(record, name, "source_only")),
                common.mean_sd(_values(record, name, "default")),
                fmt(mean(record, name, "oracle"), 2),
                fmt(gap(record, name), 0, "%"),
                f"{fmt(mean(record, name, 'source_only', 'source'), 2)} -> "
                f"{fmt(mean(record, name, 'default', 'source'), 2)}",
                f"{kept_source(record, name)} of {len(seeds(record, name))}",
                f"{fmt(mean(record, name, 'source_only', 'seconds'), 0)} / "
                f"{fmt(mean(record, name, 'default', 'seconds'), 0)}",
                "-" if not published else f"{published[0]} -> {published[1]}",
            ]
        )
    header = [
        "shift",
        "source only",
        "default (MCC)",
        "oracle",
        "gap closed",
        "source test: source only -> default",
        "check kept source only",
        "seconds: source only / default",
        "TLlib: source only -> MCC",
    ]
    return common.table(header, rows)


def _values(record: dict, task: str, arm: str, field: str = "target") -> list[float]:
    return [s[arm][field] for s in seeds(record, task) if arm in s]


def text_table(record: dict) -> list[str]:
    arms = ("source_only", "default", "auto", "oracle")
    rows = []
    for name in text_tasks(record):
        row = [name] + [fmt(mean(record, name, arm), 2) for arm in arms]
        delta = text_deltas(record).get(name)
        auto = text_deltas(record, "auto").get(name)
        row += [fmt(delta, 2), fmt(auto, 2)]
        row += [f"{kept_source(record, name)} / {kept_source(record, name, 'auto')}"]
        rows.append(row)
    deltas, autos = text_deltas(record), text_deltas(record, "auto")
    rows.append(
        ["**mean**"]
        + [f"**{fmt(text_mean(record, arm), 2)}**" for arm in arms]
        + [
            f"**{fmt(np.mean(list(deltas.values())) if deltas else None, 2)}**",
            f"**{fmt(np.mean(list(autos.values())) if autos else None, 2)}**",
            "",
        ]
    )
    header = [
        "pair",
        "source only",
        "default (MMD + self-training)",
        'weight="auto"',
        "oracle",
        "default - source",
        "auto - source",
        "check kept source only (default / auto)",
    ]
    return common.table(header, rows)


def step_table(record: dict) -> list[str]:
    steps = record["results"].get("steps", {})
    seconds = steps.get("median_seconds")
    if not seconds:
        return [f"Not measured: {steps.get('error', 'no figures')}."]
    rows = [
        ["`fit`, B source images", f"{seconds['fit'] * 1000:.1f}", "1.00x", ""],
        [
            "`fit`, 2B source images",
            f"{seconds['fit_2x'] * 1000:.1f}",
            f"{seconds['fit_2x'] / seconds['fit']:.2f}x",
            "1.00x",
        ],
        [
            "`adapt_domain` MCC, B source + B target",
            f"{seconds['mcc'] * 1000:.1f}",
            f"{seconds['mcc'] / seconds['fit']:.2f}x",
            f"**{seconds['mcc'] / seconds['fit_2x']:.2f}x**",
        ],
    ]
    header = ["step", "median ms", "vs fit on B", "vs fit on 2B (same images)"]
    return common.table(header, rows)


def steps(config: dict) -> dict[str, int]:
    """Training steps per image shift: batches per epoch times epochs."""
    size = config["batch_size"]
    return {
        name: -(-n["source_train"] // size) * config["epochs"][name]
        for name, n in config["sizes"].items()
    }


# --- the report ---


def render(record: dict[str, Any]) -> str:
    config = record["config"]
    epochs = config["epochs"]
    lines = [
        "# Domain adaptation on real shifts: `tltf.adapt_domain` at its defaults",
        "",
        "How much of the gap between training on the source alone and training "
        "on labelled target data `adapt_domain` closes with unlabelled target "
        'data only, at its defaults (`method="auto"`: MCC for the ten digit '
        "classes, MMD and a round of class-balanced self-training for the two "
        "review classes; weight 1; the do-no-harm check), on USPS <-> MNIST, "
        "textured digits and the 12 Amazon review pairs; what it costs. No "
        "target label is used by any arm but the oracle, and nothing is chosen "
        "on target test.",
        "",
        f"Command: `{record['command']}`",
        *common.note_lines(record),
        "",
        "## Goals (issue 28)",
        "",
        *common.goals_table(goals(record)),
        "",
        "## Image shifts",
        "",
        f"Target test accuracy %, mean of seeds {list(config['seeds'])} "
        "(`mean ± sd (each seed)`); the oracle is seed "
        f"{list(config['oracle_seeds'])} only (the reference the gap is "
        "measured to). The default's seconds include its own training only: "
        "the benchmark hands it the source-only model as `baseline=`; a user "
        "who does not pays the source-only column on top.",
        "",
        *image_table(record),
        "",
        "TLlib's figures are held against, not matched: its MNIST source has "
        "60,000 images (here 6,000, from MNIST's test set), it trains 50,000 "
        "iterations of 128 + 128 images (here "
        + ", ".join(f"{name} {n:,}" for name, n in steps(config).items())
        + " steps of 32 + 32) and picks its best epoch on the target test set "
        "(here the last epoch).",
        "",
        "## Amazon reviews: 12 pairs, frozen MiniLM features",
        "",
        f"Target test accuracy %, mean of seeds {list(config['seeds'])} per "
        "pair; every arm trains a head (hidden 256, dropout 0.1) on the frozen "
        f"MiniLM features for {epochs['text']} epochs. The default for two "
        "classes is MMD on the head's hidden features (the compiled optimizer, "
        "Adam 1e-3; the weight ramped up as in DANN), then a second run from "
        "the same start on the source and the half of the target's training "
        "reviews the first run labels with the most confidence, each class in "
        "its share of the source labels; its seconds include both runs.",
        "",
        *text_table(record),
        "",
        "## The cost of a step",
        "",
        f"LeNet on {record['results'].get('steps', {}).get('shift', '-')}, batch "
        f"B = {config['batch_size']}, median of "
        f"{record['results'].get('steps', {}).get('steps_measured', '-')} "
        "steps per kind, alternating calls:",
        "",
        *step_table(record),
        "",
        "An MCC step reads a source and a target batch in one forward pass, so "
        "it is compared with `fit` on the same number of images; against `fit` "
        "on B images alone it costs what reading twice the images costs.",
        "",
        "## Protocol",
        "",
        *[f"- {name}: {text}." for name, text in config["descriptions"].items()],
        "- Splits (`shifts.py`, `text.py`): MNIST's 10,000 images permuted "
        "with `default_rng(0)`: train 6,000 / val 2,000 / test 2,000; USPS "
        "train permuted with `default_rng(0)`: val 1,000 / train 6,291, test "
        "the official 2,007 (16x16 resized to 28x28, PIL bilinear); textured "
        "digits 1,197 / 200 / 400 (seed 0); each Amazon domain per label with "
        "`default_rng(0)`: test 400, val 200, train 1,400. A target's train "
        "part is the unlabelled data (labels only for the oracle); val parts "
        "are unused; test scores.",
        "- Images: TLlib's LeNet (conv 5x5x20, max-pool, conv 5x5x50, "
        "spatial dropout 0.5, max-pool, dense 500, dropout 0.5) and its "
        "256-unit bottleneck (dense, BatchNorm, ReLU), PyTorch's default "
        "initialisation, pixels scaled to [-1, 1], all trained from scratch "
        "(`tltf.build_image_classifier` with this base, every group "
        "trainable, BatchNorm training). Text: a head on the 384 pooled "
        "features of the offline all-MiniLM-L6-v2 (mean pooling, 128 tokens; "
        "computed once through tltf's own text model and cached).",
        "- Arms: source only = `adapt_domain(..., weight=0)` (the default "
        "method's recipe on the labelled source alone); default = "
        "`adapt_domain(model, source, target_inputs, baseline=source_only)`; "
        'auto = the same with `weight="auto"`; oracle = `weight=0` on the '
        "labelled target train part. Every arm of a seed starts from the same "
        "weights.",
        "- Gap closed = (default - source only) / (oracle - source only), on the "
        "means over seeds.",
        "",
        "## Goals missed: what was tried",
        "",
        *[f"- {t}" for t in MISSED],
        "",
        "## The trials behind the defaults",
        "",
        *[f"- {t}" for t in TRIALS],
        "",
        *common.machine_section(record["machine"]),
    ]
    return "\n".join(lines)
