"""Turns `domain_adaptation.py`'s figures into goals and its results file."""

from __future__ import annotations

from typing import Any

import numpy as np

LABELS = {
    "source_only": "source only (`model.fit`, labelled source)",
    "dann": '`tltf.adapt_domain(method="dann")`',
    "coral": '`tltf.adapt_domain(method="coral")`',
    "mmd": '`tltf.adapt_domain(method="mmd")`',
    "oracle": "target oracle (`model.fit`, labelled target)",
}
METHODS = ("dann", "coral", "mmd")
GAP_GOAL = 60.0  # % of the source-only -> oracle gap the best method closes
SOURCE_GOAL = 1.0  # points of source accuracy the best method may lose
STEP_GOAL = 1.5  # adaptation step / plain step
DANN_PAPER = (
    "Ganin et al., JMLR 2016, Table 2, MNIST -> MNIST-M: source only 52.25, "
    "DANN 76.66, train on target 95.96: (76.66 - 52.25) / (95.96 - 52.25) = "
    "56% of the gap closed"
)
NO_TEXT_SHIFT = (
    "No text shift is reported. The only offline text data here is CLINC150; "
    "its ten intent domains (banking, travel, ...) have disjoint intents, so a "
    "split by domain changes the label set, not the inputs of the same labels: "
    "that is not a covariate shift, and adapting across it would measure "
    "nothing `adapt_domain` claims. A made-up shift of the same intents (typos, "
    "case, paraphrase rules) would be a shift of our own design, not of "
    "data; and fine-tuning MiniLM for 5 arms x seeds would not fit this run's "
    "15 minutes on 2 shared cores."
)

Goal = tuple[str, str, str, "bool | None"]


# --- reading the figures ---


def runs(results: dict, arm: str) -> list[dict]:
    """An arm's outcomes (one per seed) that did not fail."""
    return [r for r in results["arms"].get(arm, []) if not r["error"]]


def mean(results: dict, arm: str, field: str) -> float | None:
    """Mean of ``field`` over an arm's seeds; None if any seed failed."""
    every = results["arms"].get(arm, [])
    if not every or any(r["error"] for r in every):
        return None
    return float(np.mean([r[field] for r in every]))


def gap_closed(results: dict, arm: str, field: str = "target") -> float | None:
    """``(arm - source only) / (oracle - source only)`` in %, on mean accuracies."""
    got, low, high = (mean(results, a, field) for a in (arm, "source_only", "oracle"))
    if None in (got, low, high) or high - low <= 0:
        return None
    return (got - low) / (high - low) * 100


def best_method(results: dict) -> str | None:
    """The method with the best mean *target validation* accuracy (never test)."""
    scored = {m: mean(results, m, "target_val") for m in METHODS}
    scored = {m: v for m, v in scored.items() if v is not None}
    return max(scored, key=scored.get) if scored else None


def step_ratio(results: dict, method: str) -> float | None:
    """Seconds per adaptation step over seconds per ``fit`` step."""
    medians = results.get("steps", {}).get("median_seconds", {})
    if not medians.get("fit") or method not in medians:
        return None
    return medians[method] / medians["fit"]


# --- goals ---


def goals(results: dict) -> list[Goal]:
    """The issue's goals on the digits shift: (goal, target, measured, met)."""
    best = best_method(results)
    if best is None:
        return [("every goal", "", "not measured (every method failed)", None)]
    share = gap_closed(results, best)
    src, src_only = (
        mean(results, best, "source"),
        mean(results, "source_only", "source"),
    )
    rows: list[Goal] = [
        (
            f"share of the gap closed by the best method ({best}, picked on "
            "target validation), target test",
            f">= {GAP_GOAL:.0f}%",
            _pct(share),
            None if share is None else share >= GAP_GOAL,
        ),
        (
            f"source test accuracy of {best} vs source only",
            f">= {src_only - SOURCE_GOAL:.2f}",
            f"{src:.2f}",
            src >= src_only - SOURCE_GOAL,
        ),
    ]
    for method in METHODS:
        ratio = step_ratio(results, method)
        rows.append(
            (
                f"seconds per adaptation step ({method}) vs per `fit` step",
                f"<= {STEP_GOAL:.2f}x",
                "not measured" if ratio is None else f"{ratio:.2f}x",
                None if ratio is None else ratio <= STEP_GOAL,
            )
        )
    rows.append(("a text shift", "one, if an honest one exists offline", "none", None))
    return rows


def _pct(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.0f}%"


def _verdict(met: bool | None) -> str:
    return {True: "**met**", False: "**missed**", None: "-"}[met]


# --- tables ---


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def spread(results: dict, arm: str, field: str, digits: int = 2) -> str:
    """``mean ± sd (per seed)``, or why there is none."""
    every = results["arms"].get(arm, [])
    if not every:
        return "not run"
    if any(r["error"] for r in every):
        return "failed: " + next(r["error"] for r in every if r["error"])
    values = [r[field] for r in every]
    text = f"{np.mean(values):.{digits}f}"
    if len(values) > 1:
        each = ", ".join(f"{v:.{digits}f}" for v in values)
        text += f" ± {np.std(values):.{digits}f} ({each})"
    return text


def arms_table(results: dict) -> list[str]:
    """Every arm: target, source and target-validation accuracy, share, time."""
    rows = [
        [
            LABELS[arm],
            spread(results, arm, "target"),
            spread(results, arm, "source"),
            spread(results, arm, "target_val"),
            _pct(gap_closed(results, arm)) if arm in METHODS else "",
            spread(results, arm, "seconds", 0),
        ]
        for arm in LABELS
    ]
    header = ["arm", "target test %", "source test %", "target val %"]
    return table(header + ["gap closed", "wall seconds"], rows)


def logs_table(results: dict) -> list[str]:
    """The methods' last-epoch logs, mean over seeds."""
    keys = ["task_loss", "adaptation_loss", "adaptation_weight", "domain_accuracy"]
    rows = []
    for method in METHODS:
        done = runs(results, method)
        cells = [
            f"{np.mean([r['logs'][k] for r in done]):.3f}"
            if done and all(k in r["logs"] for r in done)
            else "-"
            for k in keys
        ]
        rows.append([method, *cells])
    return table(["method", *keys], rows)


def steps_table(results: dict) -> list[str]:
    """Median seconds per step, and the ratio to ``fit``'s."""
    steps = results.get("steps", {})
    medians = steps.get("median_seconds", {})
    rows = (
        [["`fit`", f"{medians['fit'] * 1000:.1f}", "1.00x"]] if "fit" in medians else []
    )
    for method in METHODS:
        if method in medians:
            ratio = step_ratio(results, method)
            rows.append([method, f"{medians[method] * 1000:.1f}", f"{ratio:.2f}x"])
    return table(["step", "median ms per step", "vs fit"], rows)


# --- the file ---


def render(results: dict, config: dict[str, Any], info: dict[str, str]) -> str:
    """The whole results file."""
    lines = [
        "# Domain adaptation: `tltf.adapt_domain` against source only and the oracle",
        "",
        "Written by `python benchmarks/domain_adaptation.py`. All figures come "
        "from one run, in one process.",
        "",
        f"Shift: {config['description']}. Labelled source training images, "
        "unlabelled target training images (the same digits, as MNIST-M reuses "
        f"MNIST's); {config['num_train']} train, {config['num_val']} validation, "
        f"{config['num_test']} test digits per domain.",
        "",
        "## Goals (issue 16)",
        "",
        *table(
            ["goal", "target", "measured", "result"],
            [[g, t, m, _verdict(ok)] for g, t, m, ok in goals(results)],
        ),
        "",
        f"Reference: {DANN_PAPER}.",
        "",
        f"## Digits -> textured digits (mean of {len(config['seeds'])} seeds)",
        "",
        *arms_table(results),
        "",
        "Gap closed: (method - source only) / (oracle - source only), on the "
        "mean target test accuracies.",
        "",
        "Last-epoch logs of `adapt_domain` (mean over seeds; `domain_accuracy` "
        "near 0.5 means the domains look alike to the discriminator or probe):",
        "",
        *logs_table(results),
        "",
        "## Cost of a step",
        "",
        *steps_table(results),
        "",
        f"Same model and batch ({config['batch_size']}), {config['timing_rounds']} "
        "rounds of alternating calls (`fit`, dann, coral, mmd), each of "
        f"{config['timing_steps']} steps; the first steps of every call "
        f"(tracing, warm-up) dropped; {results.get('steps', {}).get('steps_measured')} "
        "steps measured per kind.",
        "",
        "## Text shift",
        "",
        NO_TEXT_SHIFT,
        "",
        *protocol(config),
        "",
        *TRIALS,
        "",
        "## Machine",
        "",
        *table(["", ""], [[k, v] for k, v in info.items()]),
        "",
    ]
    return "\n".join(lines)


def protocol(config: dict[str, Any]) -> list[str]:
    """How the arms were trained."""
    hidden = ", ".join(str(u) for u in config["hidden_units"]) or "none"
    weights = ", ".join(f"{m} {w:g}" for m, w in config["weights"].items())
    return [
        "## Protocol",
        "",
        "- Model: `tltf.build_image_classifier` on DANN's MNIST feature extractor "
        "(conv 5x5x32, max-pool, conv 5x5x48, max-pool; groups block1, block2, "
        f"both trainable), head: flatten, hidden units ({hidden}), no dropout, "
        "10-way softmax (so the features aligned are the flattened conv "
        "features, as DANN's discriminator reads); random initial weights "
        "(trained from scratch, as in "
        "the DANN paper); inputs scaled to [0, 1] in the model.",
        f"- Every arm: Adam 1e-3 (tltf's default compile), batch "
        f"{config['batch_size']}, {config['epochs']} epochs over its training "
        f"images, seeds {list(config['seeds'])} (model weights, shuffling).",
        f"- `adapt_domain` with its defaults: largest weight {weights}, DANN's "
        "ramp, align='auto' (the base trains, so the flattened conv features "
        "are aligned), 2 x 256 discriminator, five Gaussian kernels (averaged), "
        "scale-free CORAL.",
        "- Nothing is selected on the target test split; the target validation "
        "split (labelled) picks the best method for the goals.",
    ]


# Trial runs before the final one (same code; seed 0; target *validation*
# accuracy %, which is what they were judged on). Typed in by hand.
TRIALS = [
    "## Settings tried before this run",
    "",
    "Trial runs, seed 0, judged on target *validation* accuracy % (the "
    "trial logs printed test accuracy too; nothing was chosen on it). They "
    "ran on the losses as they were before this run: CORAL with the "
    "paper's 1 / (4 d^2) (values around 1e-4 here, hence weights up to "
    "10000) and MMD as the sum of its five kernels (five times today's "
    "average): their weights do not carry over to the defaults measured "
    "above.",
    "",
    "The shift itself, source only, 10 epochs: textures of mid-grey noise "
    "and fine gratings over the blurry 8x8 -> 32x32 digits: 6.0; random "
    "colour and contrast per texture, coarser gratings: 14.5; and strokes "
    "sharpened to MNIST's nearly binary ink (the shift used): 32.0. Both "
    "changes bring the shift toward MNIST-M's (source only 52% there); on "
    "the first two, no method beat source only by more than 3 points "
    "(weights 0.1-100).",
    "",
    "| features aligned | arm, largest weight | target val % | notes |",
    "|---|---|---|---|",
    "| last of 2 hidden layers (100, 100) | source only | 33.0 | |",
    "| (100, 100) | oracle | 94.5 | |",
    "| (100, 100) | dann 1 | 22.5 | discriminator 0.97 accurate |",
    "| (100, 100) | dann 0.3 | 23.0 | discriminator loss 11.5, task loss 2.0: "
    "diverged |",
    "| (100, 100) | mmd 1 | 26.0 | probe 0.47: aligned, but classes mixed |",
    "| (100, 100) | coral 10 | 36.0 | |",
    "| flattened conv features (no hidden) | source only | 36.0 | |",
    "| conv | dann 1 | 20.5 | discriminator 1.00 accurate: saturated |",
    "| conv | **dann 0.1** | 40.0 | |",
    "| conv | dann 0.3, paper's 1 x 100 discriminator | 33.5 | |",
    "| conv | dann 1, paper's 1 x 100 discriminator | 20.5 | |",
    "| conv | mmd 1 | 35.0 | |",
    "| conv | mmd 10 | 53.0 | |",
    "| conv | **mmd 30** | 54.5 | |",
    "| conv | mmd 100 | 10.5 | features collapsed (task loss 2.30) |",
    "| conv | coral 10 | 36.0 | |",
    "| conv | **coral 1000** | 38.5 | |",
    "| conv | coral 10000 | 7.0 | features collapsed (task loss 2.30) |",
    "",
    "Best in the trials (bold): no hidden units, i.e. aligning the flattened "
    "conv features, which is what align='auto' now picks when the base "
    "trains. The weights that worked sat just below a collapse of the "
    "features (task loss 2.30, chance accuracy).",
]
