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

STEP_NOTE = (
    "An adaptation step reads twice the images of a `fit` step (the source "
    "batch and a target batch of the same size, as DANN's half-source, "
    "half-target batches), in one forward pass over both; on a CPU at this "
    "size that alone costs about 2x. DANN's discriminator (1024 x 1024 on "
    "3072 features, about 4M weights against the base's 41k) adds the "
    "rest; CORAL now costs what MMD does (its d x d covariances, 6.1x in "
    "the previous run, are gone). Ratios from different runs are not "
    "comparable when the thread count differs (see the machine table)."
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
        STEP_NOTE,
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
        "are aligned), one forward pass over the source and target batches "
        "joined, discriminator 1024 x 1024 with dropout 0.5 (256 x 256 for the "
        "probe that watches CORAL and MMD), five Gaussian kernels (summed), "
        "scale-free CORAL.",
        "- Nothing is selected on the target test split; the target validation "
        "split (labelled) picks the best method for the goals.",
    ]


# Trials of the session that found why adaptation fell below source only
# (target *validation* accuracy %, which is what they were judged on; 40
# epochs, Adam 1e-3 unless said). Typed in by hand from /tmp/h3/results.jsonl.
SESSION_TRIALS = [
    "### Why adaptation fell below source only, and what changed",
    "",
    "Checked first, and found right (no bug): the reversed gradient reaches "
    "every base variable, equal to minus the discriminator loss's gradient "
    "(cosine -1), and a step along it raises the discriminator's loss; the "
    "extractor shares the model's variables; the discriminator's optimizer "
    "updates it; the ramp counts steps over epochs x steps per epoch; target "
    "batches are reshuffled each pass and go through the same in-model "
    "preprocessing; the model scored is the adapted one. Tests now hold the "
    "first of these.",
    "",
    "Cause: the discriminator (2 x 256, no dropout) told the domains apart "
    "within the first epoch (accuracy 0.95-0.98 while the ramp was still at "
    "0.06-0.2) and saturated (loss 0.01 -> 0.000). The reversed gradient is "
    "proportional to that loss's slope, sigmoid(logit) - label, so it "
    "vanished: with SGD the features never adapted (DANN = source only), "
    "with Adam the rare large gradients of a saturated game came through "
    "normalised, as jolts (discriminator loss 0.01 -> 2.9, task loss "
    "0.17 -> 0.67 between epochs), which cost target accuracy. Neither the "
    "paper's optimisation (SGD momentum 0.9, 0.01 / (1 + 10 p)^0.75 for the "
    "model and the discriminator alike), nor THUML's 1024 x 2 BatchNorm "
    "discriminator, nor 5x longer training changed that: the discriminator "
    "stayed at 1.00. The reference DANN / CDAN adversarial network (1024 -> "
    "1024 -> 1, ReLU, dropout 0.5 after each hidden layer) stays in the game "
    "(accuracy 0.65-0.81 at the end, loss 0.40-0.54) and DANN then edged "
    "past source only in these trials (36.8 against 35.2), though not in the "
    "final run above (33.0: seed 2 fell to 22.0; with its discriminator "
    "initialised otherwise, seed 2 had scored 35.5): DANN's outcome here "
    "still swings by +-10 points with the initialisation, as adversarial "
    "training does on 1197 images. MMD at the weight the reference DAN "
    "implementation "
    "uses (THUML's, trade-off 1 on the *sum* of five Gaussian kernels; tltf "
    "had averaged them, i.e. a fifth of it) beats source only on every seed.",
    "",
    "| arm | setting | epochs | seeds | target val % | discriminator acc. "
    "(last epoch) | notes |",
    "|---|---|---|---|---|---|---|",
    "| source only | Adam | 20 | 0 | 35.5 | | |",
    "| source only | Adam | 40 | 0, 1, 2 | 35.2 (35.0, 36.5, 34.0) | | |",
    "| source only | Adam | 100 | 0 | 35.0 | | |",
    "| source only | paper's SGD | 100 | 0 | 36.0 | | |",
    "| dann, 2 x 256 | Adam | 20 | 0 | 34.5 | 0.994 | |",
    "| dann, 2 x 256 | Adam | 40 | 0 | 30.0 | 0.995 | 0.95 after epoch 1; loss jolts |",
    "| dann, 2 x 256 | Adam | 100 | 0 | 35.5 | 1.000 | loss 0.000 |",
    "| dann, 2 x 256 | paper's SGD, model and discriminator | 40 | 0 | 34.5 "
    "| 0.999 | 0.98 from epoch 2 |",
    "| dann, 2 x 256 | paper's SGD | 100 | 0 | 35.5 | 1.000 | |",
    "| dann, THUML 1024 x 2 + BatchNorm | paper's SGD | 100 | 0 | 34.5 | 1.000 | |",
    "| dann 0.1, 2 x 256 | Adam | 40 | 0 | 38.0 | 0.975 | |",
    "| **dann, 1024 x 2 + dropout 0.5** | Adam | 40 | 0, 1, 2 | 36.8 "
    "(38.0, 37.0, 35.5) | 0.79, 0.81, 0.65 | not saturated |",
    "| dann, 1024 x 2 + dropout 0.5 | Adam | 80 | 0 | 37.5 | 0.64 | longer: no gain |",
    "| entropy minimisation alone (weight 1, no alignment) | Adam | 40 | 0 | "
    "8.5 | | collapsed to few classes |",
    "| dann + entropy 1 | Adam | 40 | 0 | 15.5 | 0.995 | |",
    "| mmd (mean of kernels) 1 + entropy 1 | Adam | 40 | 0 | 8.0 | | |",
    "| mmd, mean of kernels, weight 10 (= sum, weight 2) | Adam | 40 | 0, 1, "
    "2 | 43.7 (45.0, 47.0, 39.0) | | source 98.2 |",
    "| **mmd, sum of kernels, weight 1 (THUML's DAN)** | Adam | 40 | 0, 1, 2 "
    "| 42.8 (48.0, 44.5, 36.0) | | source 98.0 |",
    "",
    "Paper's SGD: momentum 0.9, rate 0.01 / (1 + 10 p)^0.75 at progress p, "
    "the discriminator at the same rate. Entropy minimisation (MinEnt, "
    "Grandvalet & Bengio 2005; the target entropy term of RTN and VADA) "
    "reinforces the source model's target guesses; with ~35% of them right "
    "here it collapsed the target predictions, so it was not added. "
    "Changed in tltf: the default discriminator (1024 x 2, dropout 0.5), MMD "
    "sums its kernels, one forward pass over both domains (DANN step cost), "
    "CORAL from batch x batch Gram matrices instead of d x d covariances "
    "(the same value; d = 3072 here). Not found: a setting of CORAL that "
    "helps (not retried in this session).",
]

# Trial runs before the final one (same code; seed 0; target *validation*
# accuracy %, which is what they were judged on). Typed in by hand.
TRIALS = [
    "## Settings tried before this run",
    "",
    *SESSION_TRIALS,
    "",
    "### Earlier trials (first version of `adapt_domain`, 10 epochs)",
    "",
    "Trial runs, seed 0, judged on target *validation* accuracy % (the "
    "trial logs printed test accuracy too; nothing was chosen on it). They "
    "ran on the losses as they were then: CORAL with the paper's "
    "1 / (4 d^2) (values around 1e-4 here, hence weights up to 10000), MMD "
    "as the sum of its five kernels (as today's), a 2 x 256 discriminator "
    "without dropout, and two forward passes per step.",
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
