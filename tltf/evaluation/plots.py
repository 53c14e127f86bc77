"""PNG plots: confusion matrix, training curves, reliability diagram (calibration),
learning-rate search trials and a distillation comparison.

Figures are drawn on matplotlib's Agg canvas directly: no display is needed
and the global pyplot backend is left alone (inline plots in notebooks keep
working). Stage changes that
`tltf.StagedUnfreezing` logs to the History are drawn as vertical lines on the
training curves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: The History key where `tltf.StagedUnfreezing` and `tltf.fine_tune` log the stage.
STAGE_KEY = "stage"
_DETAIL_KEYS = ("trainable_params", "lr_head", "learning_rate")


def _figure(figsize: tuple[float, float]):
    """A matplotlib Figure on an Agg canvas, outside pyplot's state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def confusion_matrix(report: Any, path: str | Path) -> Path:
    """Draws the confusion matrix of an `EvaluationReport` with counts.

    Args:
        report: The report (``class_names``, ``confusion_matrix``, ``accuracy``).
        path: PNG file to write.

    Returns:
        The path written.
    """
    names = report.class_names
    matrix = report.confusion_matrix
    size = max(4.0, 0.6 * len(names) + 2.5)
    fig = _figure((size, size))
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(names)), labels=names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), labels=names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"Confusion matrix (accuracy {report.accuracy:.3f})")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            color = "white" if count > peak / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=color)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)


def stage_changes(logs: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Epochs where the unfreezing stage changed, from History logs.

    Args:
        logs: ``History.history``: per-epoch values by key.

    Returns:
        ``[{"epoch": 0, "stage": ..., ...}, ...]``: the first epoch of every
        stage (epochs count from 0), with the other stage details logged on
        that epoch (trainable parameter count, head and optimizer rates).
    """
    if STAGE_KEY not in logs:
        return []
    changes = []
    previous = object()
    for epoch, stage in enumerate(logs[STAGE_KEY]):
        if stage != previous:
            entry = {"epoch": epoch, "stage": _label(stage)}
            for detail in _DETAIL_KEYS:
                if detail in logs and epoch < len(logs[detail]):
                    entry[detail] = logs[detail][epoch]
            changes.append(entry)
        previous = stage
    return changes


def _label(stage: Any) -> Any:
    """Stages logged as floats (1.0) read as integers (1)."""
    if isinstance(stage, float) and stage.is_integer():
        return int(stage)
    return stage


def training_curves(logs: Mapping[str, Sequence[Any]], path: str | Path) -> Path:
    """Plots loss and metrics per epoch, training and validation, with stages.

    Args:
        logs: ``History.history``.
        path: PNG file to write.

    Returns:
        The path written.
    """
    from matplotlib.ticker import MaxNLocator

    metrics = _metric_names(logs)
    fig = _figure((4.5 * len(metrics), 3.8))
    axes = fig.subplots(1, len(metrics), squeeze=False)
    changes = stage_changes(logs)
    for ax, metric in zip(axes[0], metrics):
        for key, style in ((metric, "-o"), (f"val_{metric}", "--s")):
            if key in logs:
                values = [float(v) for v in logs[key]]
                ax.plot(range(1, len(values) + 1), values, style, label=key, ms=3)
        for change in changes[1:]:
            epoch = change["epoch"] + 0.5  # Between the last old and first new epoch.
            ax.axvline(epoch, color="tab:red", alpha=0.6, linestyle=":")
            ax.text(
                epoch,
                ax.get_ylim()[1],
                f" stage {change['stage']}",
                color="tab:red",
                fontsize=8,
                va="top",
                rotation=90,
            )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)


def _metric_names(logs: Mapping[str, Sequence[Any]]) -> list[str]:
    """Numeric metrics to plot: loss first, then accuracy, f1, the rest."""
    skip = {STAGE_KEY, *_DETAIL_KEYS} | {"lr"}
    names = []
    for key, values in logs.items():
        base = key[4:] if key.startswith("val_") else key
        if base in skip or base.startswith("lr_") or base in names:
            continue
        if not _numeric(values):
            continue
        names.append(base)
    order = {"loss": 0, "accuracy": 1, "f1": 2}
    return sorted(names, key=lambda n: order.get(n, 3))[:3] or ["loss"]


def _numeric(values: Sequence[Any]) -> bool:
    try:
        [float(v) for v in values]
    except (TypeError, ValueError):
        return False
    return len(values) > 0


def reliability_diagram(result: Any, path: str | Path) -> Path:
    """Draws accuracy against confidence before and after temperature scaling.

    Args:
        result: A `tltf.CalibrationResult` (its ``reliability_before`` and
            ``reliability_after`` bins, ECEs, temperature and threshold).
        path: PNG file to write.

    Returns:
        The path written.
    """
    fig = _figure((5.0, 4.6))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    for table, ece, label, style in (
        (result.reliability_before, result.ece_before, "before", "--s"),
        (result.reliability_after, result.ece_after, "after", "-o"),
    ):
        filled = [i for i, count in enumerate(table.get("count", [])) if count]
        ax.plot(
            [table["confidence"][i] for i in filled],
            [table["accuracy"][i] for i in filled],
            style,
            ms=4,
            label=f"{label} scaling (ECE {ece:.3f})",
        )
    ax.axvline(result.threshold, color="tab:red", alpha=0.6, linestyle=":")
    ax.text(result.threshold, 0.02, " threshold", color="tab:red", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability (temperature {result.temperature:.2f})")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)


def tuning_trials(result: Any, path: str | Path) -> Path:
    """Draws each trial's score against its learning rate(s).

    Args:
        result: A `tltf.TuningResult` (its ``trials``, ``objective``,
            ``direction`` and ``best_hyperparameters``).
        path: PNG file to write.

    Returns:
        The path written.
    """
    rates = [k for k in result.best_hyperparameters if k.endswith("learning_rate")]
    rates = rates or list(result.best_hyperparameters)[:1]
    fig = _figure((4.5 * max(len(rates), 1), 3.8))
    axes = fig.subplots(1, max(len(rates), 1), squeeze=False)[0]
    scored = [t for t in result.trials if t.score is not None]
    for ax, name in zip(axes, rates):
        points = [
            (float(t.hyperparameters[name]), float(t.score))
            for t in scored
            if isinstance(t.hyperparameters.get(name), (int, float))
        ]
        if points:
            ax.plot(*zip(*points), "o", ms=5, label="trial")
            best = result.best_hyperparameters.get(name)
            top = [p for p in points if p[0] == best]
            if top:
                ax.plot(*top[0], "*", ms=14, color="tab:red", label="best")
        if points and min(p[0] for p in points) > 0:
            ax.set_xscale("log")
        ax.set_xlabel(name.replace("_", " "))
        ax.set_ylabel(f"{result.objective} ({result.direction})")
        ax.set_title(f"{len(scored)} trials")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)


def distillation_comparison(report: Mapping[str, Any], path: str | Path) -> Path:
    """Draws teacher against student: accuracy, F1, size, parameters, latency.

    Args:
        report: What `tltf.distillation_report` returns.
        path: PNG file to write.

    Returns:
        The path written.
    """
    panels = [
        ("accuracy", "accuracy", 1.0),
        ("f1", "macro F1", 1.0),
        ("params", "parameters (millions)", 1e-6),
        ("size_bytes", "export size (MB)", 1e-6),
        ("latency_ms", "latency, batch of 1 (ms)", 1.0),
    ]
    panels = [p for p in panels if report["teacher"].get(p[0]) is not None]
    fig = _figure((2.6 * len(panels), 3.4))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, title, scale) in zip(axes, panels):
        values = [float(report[role][key]) * scale for role in ("teacher", "student")]
        bars = ax.bar(["teacher", "student"], values, color=["tab:blue", "tab:orange"])
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        ax.set_title(title, fontsize=9)
    fig.suptitle(
        f"Distillation: agreement {report['agreement']:.3f} on "
        f"{report['num_examples']} examples",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)
