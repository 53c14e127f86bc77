"""Turns a record of `few_shot.py` into goals met or missed and its report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common
from benchmarks.common import Goal

GOAL_10_SHOT = 92.5  # issue 29: the probe of RESULTS.md (90.53) + 2
FULL_DATA_GOAL = 95.8  # issue 29: the full-data probe (95.27) + 0.5
OOS_RECALL_BEFORE = 55.5  # RESULTS-compact.md before the stage (calibrate_rejection)
#: The full-data call at the defaults and its rejection: `compact.py`'s record
#: ((d) is `fine_tune` at its defaults on the full data; the stage is off there).
COMPACT_RECORD = Path(__file__).with_name("RESULTS-compact.json")
MAX_SECONDS = 600
ANCHORS = [
    ["USE + ConveRT, frozen + MLP (Casanueva et al. 2020)", "93.26"],
    ["RoBERTa-base, cross-entropy fine-tuning", "91.55"],
    ["DNNC (Zhang et al. 2020)", "93.76"],
    [
        "CPFT (Zhang et al. 2021: contrastive pre-training + fine-tuning)",
        "94.18",
    ],
    ["tltf before (MiniLM-L6, fine_tune defaults) / frozen probe", "90.44 / 90.53"],
]


FULL_DATA_LINES = [
    "Above 16 texts per intent the stage makes one pass (since 2026-12-07, "
    "session 9; before, none). Why (the 'session 9' rows above, validation "
    "split): one pass then LogisticRegression scored 96.93 against the "
    "probe's 95.73 (two passes 96.83), and through tltf `fine_tune(epochs=3)` "
    "scored 96.40 with the pass against 95.83 without. Rerun at the defaults "
    "by `compact.py --threads 1 --jobs 2` on 2026-12-07 ((d): the pass, the "
    "head, 3 unfrozen epochs): 96.02 test, the goal of 95.8 **met** (before "
    "the pass: 95.40 and 95.02 in two runs; probe 95.27); with `lora_rank=8` "
    "95.78. Out-of-scope recall with `calibrate_rejection` on that model: "
    "62.4% on `oos_test` (55.5 before the stage, 54.2 in the run without the "
    "pass; Larson et al.'s BERT 52.3), in-scope accuracy 95.07 with "
    "rejection against 96.02 without: **met**. Earlier validation evidence "
    "without the stage (2026-12-07, fine_tune's unfrozen stage at 1/3 epoch, "
    "annealed): the default rates 95.83, lr_mult=5 95.73, all layers at 1e-4 "
    "95.07, the probe 95.73, the frozen head 95.57: no cross-entropy recipe "
    "reached probe + 0.5, which is why the stage was tried at full data.",
    "",
    "Cost: the issue's 48-minute full-data call (10k texts, length 64, E=3) "
    "was padding, not tltf: each batch is now cut to its longest text "
    "(`TextPreprocess(trim=True)`, same probabilities to 1e-8), 2.0x on a "
    "`fine_tune` call at length 64 and 1.3x at 32 (CPU seconds at 1 thread, "
    "the call on 640 texts: 95.2 -> 47.1 s). tltf's unfrozen step cost what "
    "KerasHub's own `fit` did (2.79 vs 3.10 CPU s per batch of 32 at length "
    "64) before the change. Full-data cost at 32 tokens, 1 thread, trimmed "
    "(CPU seconds, from the trials' measured rates, not one timed call): the "
    "probe 153 (feature pass 139, LogisticRegression 14); `fine_tune` E=3 "
    "about 1,550 (feature pass ~140, 3 x 469 steps x 0.98 s) before the "
    "stage's pass, 1,868 s of wall time with it in the compact run ((d), one "
    "core, (f) on the other): the pass costs about what an unfrozen epoch "
    "does (384 s in that run).",
    "",
    "Annealing at few shots (RESULTS.md: 90.90 -> 90.44 test): on the "
    "validation split, draw 0, the unfrozen epochs without the stage gave "
    "91.67 at constant rates and 91.30 annealed (11 texts of 3000, one draw: "
    "not settled). With the stage, the 2 annealed unfrozen epochs after the "
    "head move validation accuracy by -0.17 (10-shot) and +0.30 (5-shot): "
    "within noise, so annealing no longer decides the few-shot result; the "
    "default stays annealed.",
]


def _values(rows: list[dict], key: str) -> list[float]:
    return [r[key] for r in rows if key in r]


def _spread(values: list[float], digits: int = 2) -> str:
    return common.mean_sd(values, digits) if values else "-"


def goals(results: dict[str, Any]) -> list[Goal]:
    """The issue's goals, from this run's test figures."""
    out: list[Goal] = []
    for shots in results:
        if shots == "trials":
            continue
        probe = _values(results[shots]["probe"], "accuracy")
        tuned = _values(results[shots]["defaults"], "accuracy")
        if not probe or not tuned:
            continue
        target = np.mean(probe) + 2
        if shots == "10":
            target = max(target, GOAL_10_SHOT)
        out.append(
            (
                f"{shots}-shot mean test accuracy, fine_tune defaults",
                f">= {target:.2f} (probe {np.mean(probe):.2f} + 2"
                + (f", and >= {GOAL_10_SHOT}" if shots == "10" else "")
                + ")",
                f"{np.mean(tuned):.2f}",
                bool(np.mean(tuned) >= target),
            )
        )
    seconds = _values(results.get("10", {}).get("defaults", []), "seconds")
    if seconds:
        out.append(
            (
                "10-shot fine_tune call, wall time",
                f"<= {MAX_SECONDS / 60:.0f} min",
                f"{max(seconds) / 60:.1f} min (slowest draw)",
                max(seconds) <= MAX_SECONDS,
            )
        )
    out += full_data_goals(common.read_record(COMPACT_RECORD))
    return out


def full_data_goals(compact: dict[str, Any]) -> list[Goal]:
    """The full-data goals, from `compact.py`'s record (its own run)."""
    machine = compact.get("machine", {})
    run = f"RESULTS-compact.md, run {machine.get('date (UTC)', '?')[:10]}"
    epochs = compact.get("config", {}).get("epochs", "?")
    full, serve = compact["results"]["d"], compact["results"]["serve"]
    goals: list[Goal] = []
    name, target = "full data, fine_tune defaults", f">= {FULL_DATA_GOAL}"
    if "error" in full:
        goals.append((name, target, "-", None))
    else:
        shown = f"{full['accuracy']:.2f} ({run}: {epochs} unfrozen epochs)"
        goals.append((name, target, shown, full["accuracy"] >= FULL_DATA_GOAL))
    name = "out-of-scope recall with calibrate_rejection, full data"
    target = f">= {OOS_RECALL_BEFORE} (before the stage)"
    if "error" in serve:
        shown = f"not measured: that run's serving arm failed ({run})"
        goals.append((name, target, shown, None))
    else:
        recall = serve["rejection"]["test_out_of_scope_recall"]
        shown = f"{recall:.1f} ({run})"
        goals.append((name, target, shown, recall >= OOS_RECALL_BEFORE))
    return goals


def draws_table(results: dict[str, Any]) -> list[str]:
    """One row per shot count: the probe and the defaults over the draws."""
    rows = []
    for shots, arms in results.items():
        if shots == "trials":
            continue
        probe, tuned = arms["probe"], arms["defaults"]
        errors = [r["error"] for r in probe + tuned if "error" in r]
        rows.append(
            [
                shots,
                _spread(_values(probe, "accuracy")),
                _spread(_values(tuned, "accuracy")),
                _spread(_values(tuned, "macro_f1")),
                _spread([s / 60 for s in _values(tuned, "seconds")], 1),
                _spread(_values(tuned, "test_out_of_scope_recall"), 1),
                _spread(_values(tuned, "test_accuracy_with_rejection"), 1),
                "; ".join(errors) or "",
            ]
        )
    return common.table(
        [
            "texts per intent",
            "probe: test accuracy %",
            "fine_tune defaults: test accuracy %",
            "macro-F1 %",
            "call wall time (min)",
            "oos_test recall % (calibrate_rejection)",
            "in-scope accuracy with rejection %",
            "errors",
        ],
        rows,
    )


def reading(results: dict[str, Any]) -> list[str]:
    """What the table says against the goals, in one paragraph."""
    gains, short = [], []
    for shots in ("10", "5"):
        arms = results.get(shots, {})
        probe = _values(arms.get("probe", []), "accuracy")
        tuned = _values(arms.get("defaults", []), "accuracy")
        if probe and tuned:
            gain = np.mean(tuned) - np.mean(probe)
            gains.append(f"{gain:+.2f} at {shots}")
            if gain < 2:
                short.append(shots)
    if not gains:
        return []
    verdict = (
        f"short of the +2 the goals ask at {' and '.join(short)}"
        if short
        else "the +2 the goals ask"
    )
    return [
        "Gain of the defaults over the probe (test, mean of the draws): "
        + ", ".join(gains)
        + f" texts per intent: {verdict} (the run before, at temperature 0.1: "
        "91.76 and 88.03). On validation the stage at "
        "temperature 0.05 gained +1.70 and +2.16 over the probe at 10 per "
        "intent (draws 0, 1) and +2.70 at 5 (draw 0, where 0.1 scored the "
        "same in the same loop). Tried and no better on "
        "validation (the trials below): temperature 0.1 or 0.2, a "
        "cross-entropy term during the stage (CPFT's 0.1), batches of 32 "
        "intents x 2 texts or 16 x 4, 2 dropout views per text, 8 passes "
        "instead of 4, the top 2 layers only, SetFit's pair loss, "
        "temperature 0.03 or 0.02 (within 0.13 of 0.05 on two draws). Not "
        "tried: contrastive pre-training on unlabelled intent text (where "
        "CPFT gets most of its 94.18).",
    ]


def trials_lines(trials: dict[str, Any]) -> list[str]:
    """The validation trials behind the defaults, as the record stores them."""
    lines = [trials.get("about", ""), ""]
    header = ["trial", "texts per intent", "draw", "validation accuracy %", "notes"]
    rows = [
        [t["trial"], t["shots"], t["draw"], t["val"], t.get("notes", "")]
        for t in trials.get("rows", [])
    ]
    return lines + common.table(header, rows)


def render(record: dict[str, Any]) -> str:
    """The markdown report of a `few_shot.py` record."""
    results, config = record["results"], record["config"]
    lines = [
        "# CLINC150 few-shot: fine_tune's contrastive stage against the probe",
        "",
        f"`{record['command']}`: {config['backbone']} at {config['sequence_length']} "
        f"tokens; draws {list(config['seeds'])} of `data.few_shot`; "
        f"`fine_tune(model, (texts, labels), epochs={config['epochs']})` at its "
        "defaults, which with at most 16 texts per intent run the contrastive "
        "stage (4 passes of supervised contrastive loss on batches of 16 intents "
        "x 2 texts, temperature 0.05), train the head on the tuned features, "
        "then 2 unfrozen epochs. Test split, in-scope accuracy; nothing was "
        "chosen on it.",
        "",
        *common.note_lines(record),
        "## Goals (issue 29)",
        "",
        *common.goals_table(goals(results)),
        "",
        "## Results",
        "",
        *draws_table(results),
        "",
        *reading(results),
        "",
        "## Published anchors (in-scope test accuracy, CLINC150 10-shot)",
        "",
        *common.table(["method", "10-shot"], ANCHORS),
        "",
        "The anchors use larger encoders (RoBERTa-base, 125M parameters; "
        "USE + ConveRT) and, for CPFT, contrastive pre-training on intent "
        "corpora; MiniLM-L6 has 22.7M parameters.",
        "",
        "## The trials that chose the defaults (validation split)",
        "",
        *trials_lines(results.get("trials", {})),
        "",
        "## Full data, cost and annealing",
        "",
        *FULL_DATA_LINES,
        "",
        *common.machine_section(record["machine"]),
    ]
    return "\n".join(lines)
