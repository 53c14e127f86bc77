"""`fine_tune`: the frozen-then-unfrozen transfer-learning recipe in one call.

fastai's ``Learner.fine_tune`` is the model: train the new head with the base
frozen for ``freeze_epochs`` at ``base_lr``, then multiply every rate by
``lr_decay`` (fastai halves it: 0.5 for image models; 0.05 for text models),
unfreeze and train ``epochs`` more with discriminative rates from
``base_lr * lr_decay / lr_mult`` (earliest group) to ``base_lr * lr_decay``
(head), annealed to 0 along a half cosine. The frozen epochs use frozen-base
feature caching (`tltf.training.feature_cache`) when it is safe, so the base
runs once instead of once per epoch.

The model's backbone is read once (``model.backbone``) and handed to the
steps that need it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tltf import arguments
from tltf.backbones.layers import Backbone, adapted_layers
from tltf.data.base import LoadedData
from tltf.data.inputs import as_list
from tltf.errors import ConfigError
from tltf.model import backbone_of, check_data, require_model
from tltf.progress import EpochProgbar, StageLine, resolve_verbose
from tltf.training import contrastive
from tltf.training.feature_cache import can_cache_features, fit_frozen_head
from tltf.training.feature_cache.fit_head import AUTO_MAX_EPOCHS
from tltf.training.fitting import fit_data, merge_histories
from tltf.training.freezing import train_groups
from tltf.training.lora.enable import add_adapters
from tltf.training.unfreezing import schedule as sched
from tltf.training.unfreezing.annealing import CosineAnnealing
from tltf.training.unfreezing.callback import StagedUnfreezing
from tltf.training.unfreezing.rates import grouped_part

DEFAULT_BASE_LR = 2e-3
# Once unfrozen, every rate is multiplied by lr_decay. fastai halves it for
# CNNs; transformer encoders fine-tune at 1e-5 to 5e-5 (BERT, Devlin et al.
# 2019), so text models take 0.05: at the default 1e-3 the head gets 5e-5 and
# the top encoder layer about 3e-5.
IMAGE_LR_DECAY = 0.5
TEXT_LR_DECAY = 0.05
# LoRA adapters start at zero and train at the rates of a new head (Hu et al.
# 2021 fine-tune RoBERTa's adapters at 4e-4 to 5e-4), one rate for every
# group: lr_decay 0.5 and lr_mult 1 (no discriminative rates).
LORA_LR_DECAY = 0.5
DEFAULT_LR_MULT = 100.0


def fine_tune(
    model: keras.Model,
    train_data: Any,
    val_data: Any = None,
    *,
    epochs: int,
    freeze_epochs: int | str = "auto",
    base_lr: float | None = None,
    lr_mult: float | None = None,
    lr_decay: float | None = None,
    schedule: str | Mapping[int, sched.StageSpec] = "all",
    warmup_steps: int = 0,
    anneal: bool = True,
    train_bn: bool | None = None,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    cache_features: bool = True,
    lora_rank: int | None = None,
    contrastive_epochs: int | str = "auto",
    verbose: str | int = "auto",
) -> keras.callbacks.History:
    """Trains the head with the base frozen, then unfreezes and fine-tunes.

    Args:
        model: A model built by a tltf builder (compiled or not).
        train_data: A batched ``tf.data.Dataset`` of ``(inputs, labels)``,
            arrays or lists ``(x, y)``, or a `tltf.data.LoadedData` (its
            validation split is used when ``val_data`` is None).
        val_data: Validation data in the same form, or None.
        epochs: Epochs after unfreezing.
        freeze_epochs: Epochs of head-only training first (0 to skip), or
            ``"auto"``: when the head can train on cached base features
            (cheap), `fit_frozen_head`'s ``epochs="auto"`` (until the
            validation loss, or the training loss without validation data,
            has not improved for 3 epochs, at most 50, keeping the best
            epoch's head); else 1 epoch.
        base_lr: Head rate while frozen; None keeps the compiled optimizer's
            rate (or 2e-3 if the model is not compiled).
        lr_mult: Ratio between the head's rate and the earliest group's rate
            once unfrozen (fastai's ``lr_mult``). None: 100, or 1 with LoRA.
        lr_decay: Once the base is unfrozen, every rate is multiplied by
            this. None: 0.5 for image models (fastai halves ``base_lr``),
            0.05 for text models (transformer encoders fine-tune at rates
            around 1e-5 to 5e-5), 0.5 with LoRA (adapters train at a new
            layer's rates).
        schedule: How the base unfreezes after the frozen epochs: ``"all"``
            at once, ``"gradual"`` (one more group per epoch, ULMFiT),
            ``"gradual:n"`` (one more every n epochs), ``"plateau"`` (one more
            each time the validation loss, or the training loss without
            validation data, stops improving), or ``{epoch: spec}`` counted
            from the first unfrozen epoch.
        warmup_steps: Linear warm-up of newly unfrozen groups' rates.
        anneal: Whether the unfrozen epochs' rates fall along a half cosine
            to 0 at the last step (`CosineAnnealing`; fastai's
            ``fit_one_cycle`` anneals, BERT's recipe decays linearly), so
            the model returned is not that of a step at full rate. The
            ``lr_<group>`` logs stay the scheduled rates; ``lr_factor`` is
            the annealing factor at each epoch's end.
        train_bn: If not None, whether BatchNorm layers of the base train.
        callbacks: Keras callbacks for both phases (one callback, or a list).
        cache_features: Use frozen-base feature caching when safe.
        lora_rank: Train LoRA adapters of this rank (`tltf.enable_lora`'s
            default layers) instead of the base's weights, which stay as
            they are; the schedule then reaches the adapters group by
            group. A model that already has adapters trains them with no
            need for this.
        contrastive_epochs: Text classifiers: passes over the training
            texts of a supervised contrastive stage first
            (`tltf.training.contrastive`: the encoder, or its LoRA adapters,
            learns to pull the pooled embeddings of one class together on
            batches of 16 classes x 2 texts, temperature 0.05), so the head
            then trains on tuned features. Cost: ``contrastive_epochs * n /
            32`` steps of 32 texts, about one unfrozen epoch each (4 passes
            over 1,500 texts: about 4.5 minutes at one CPU thread).
            ``"auto"``, for a multiclass text classifier: 4 with at most 16
            training examples per class on average, 1 with more (a pass
            costs about what an unfrozen epoch does), and 0 with
            ``freeze_epochs=0`` (a head already trained on the encoder as it
            is); 0 for other models. On CLINC150 at 10 texts per intent the
            stage and a head on its features score 93.2 and 92.8 on the
            validation split (two draws) against 91.5 and 90.7 for a probe on
            frozen embeddings; on all 100 texts per intent one pass scores
            96.9 against 95.7 (``benchmarks/clinc150``).
        verbose: As in ``model.fit``.

    Returns:
        One ``History`` for all frozen and unfrozen epochs, with ``stage``,
        ``trainable_params`` and ``lr_<group>`` per epoch; a contrastive
        stage's losses (one per pass) are in ``params["contrastive_loss"]``.

    Raises:
        ConfigError: Bad epochs, rates or schedule; a learning-rate schedule
            object together with ``base_lr``.
        DataError: Labels that do not fit the model's classes.

    Example:
        >>> model = tltf.build_image_classifier(
        ...     "keras:mobilenet_v2", 3, weights=None, input_shape=(32, 32, 3))
        >>> history = tltf.fine_tune(model, data.train, data.validation, epochs=2)
    """
    require_model(model)
    check_data(model, train_data, "train_data")
    backbone = backbone_of(model)
    lora = lora_rank is not None or bool(adapted_layers(backbone.model))
    if lr_mult is None:
        lr_mult = 1.0 if lora else DEFAULT_LR_MULT
    if lr_decay is None:
        lr_decay = LORA_LR_DECAY if lora else default_lr_decay(model)
    if isinstance(train_data, LoadedData):
        val_data = train_data.validation if val_data is None else val_data
        train_data = train_data.train
    _check_counts(epochs, freeze_epochs, lr_mult, base_lr)
    _check_options(anneal, cache_features, callbacks)
    verbose = resolve_verbose(verbose)
    if lora_rank is not None:
        add_adapters(model, backbone, lora_rank)
    if contrastive_epochs == "auto" and freeze_epochs == 0:
        contrastive_epochs = 0  # the head was trained on the encoder as it is
    contrastive = _contrastive_stage(
        model, backbone, train_data, contrastive_epochs, verbose
    )
    plan = _Plan(
        backbone,
        schedule,
        monitor="val_loss" if val_data is not None else "loss",
        lr_mult=lr_mult,
        lr_decay=lr_decay,
        warmup_steps=warmup_steps,
        train_bn=train_bn,
        verbose=0 if verbose == 0 else 1,
        epochs=epochs,
        anneal=anneal,
    )
    auto = freeze_epochs == "auto"
    plan.check(1 if auto else freeze_epochs)
    _prepare(model, backbone, base_lr)
    callbacks = as_list(callbacks)
    cached = cache_features and _can_cache_frozen_stage(model, callbacks)
    if auto and not cached:
        freeze_epochs = 1  # The base runs every epoch: fastai's one epoch.
    if freeze_epochs == 0 or not cached:
        history = fit_data(
            model,
            train_data,
            val_data,
            epochs=freeze_epochs + epochs,
            callbacks=[
                *plan.callbacks(freeze_epochs),
                *callbacks,
                *_progbar(verbose, freeze_epochs, shown=True),
            ],
            verbose=verbose,
        )
    else:
        history = _two_stages(
            model,
            plan,
            (train_data, val_data),
            freeze_epochs,
            epochs,
            callbacks,
            verbose,
        )
    if contrastive is not None:
        history.params = {**(history.params or {}), "contrastive_loss": contrastive}
    return history


def _contrastive_stage(model, backbone, train_data, epochs, verbose):
    """Runs the contrastive stage if asked (or picked); its losses, or None."""
    if epochs == 0 or (epochs == "auto" and not contrastive.is_text_classifier(model)):
        return None
    if epochs != "auto":
        contrastive.contrastive_epochs_for(model, epochs, None)  # checks first
    examples = contrastive.examples_of(train_data)
    passes = contrastive.contrastive_epochs_for(model, epochs, examples[1])
    if not passes:
        return None
    history = contrastive.train_contrastive(
        model, backbone, examples, passes, verbose=verbose
    )
    return [float(x) for x in history.history["loss"]]


def _two_stages(model, plan, data, freeze_epochs, epochs, callbacks, verbose):
    """The head on cached features, then ``epochs`` unfrozen ones; one History."""
    train_data, val_data = data
    line = []
    if verbose:
        auto = freeze_epochs == "auto"
        most = AUTO_MAX_EPOCHS if auto else freeze_epochs
        best = ("val_loss" if val_data is not None else "loss") if auto else None
        line = [StageLine("Head only (base frozen)", most, best)]
    first = fit_frozen_head(
        model,
        train_data,
        val_data,
        epochs=freeze_epochs,
        callbacks=[*callbacks, *line],
        verbose=0,
    )
    _add_frozen_stage_logs(first, model, plan.backbone)
    done = len(first.epoch)  # "auto" stops when the head stops improving.
    second = fit_data(
        model,
        train_data,
        val_data,
        initial_epoch=done,
        epochs=done + epochs,
        callbacks=[*plan.callbacks(done), *callbacks, *_progbar(verbose, done, False)],
        verbose=verbose,
    )
    model.history = merge_histories([first, second], model)
    return model.history


def _progbar(verbose: int, frozen: int, shown: bool) -> list:
    """Keras' progress bar with the unfrozen epochs numbered from 1."""
    return [EpochProgbar(frozen, shown=shown)] if verbose else []


@dataclasses.dataclass
class _Plan:
    """How fine_tune unfreezes, whatever the number of frozen epochs."""

    backbone: Backbone
    schedule: str | Mapping[int, sched.StageSpec]
    monitor: str
    lr_mult: float
    lr_decay: float
    warmup_steps: int
    train_bn: bool | None
    verbose: int
    epochs: int
    anneal: bool

    def callbacks(self, frozen_epochs: int) -> list[keras.callbacks.Callback]:
        """The annealing (first: it restores the nominal rates that
        `StagedUnfreezing` logs at epoch end), then the unfreezing."""
        unfreezing = self.unfreezing(frozen_epochs)
        if not self.anneal:
            return [unfreezing]
        return [CosineAnnealing(self.epochs, start_epoch=frozen_epochs), unfreezing]

    def unfreezing(self, frozen_epochs: int) -> StagedUnfreezing:
        """`StagedUnfreezing` for the schedule after ``frozen_epochs``."""
        return StagedUnfreezing(
            _full_schedule(self.backbone.group_names, self.schedule, frozen_epochs),
            monitor=self.monitor,
            stage_lr_decay=self.stage_lr_decay(frozen_epochs),
            discriminative=self.discriminative,
            warmup_steps=self.warmup_steps,
            train_bn=self.train_bn,
            verbose=self.verbose,
        )

    def check(self, frozen_epochs: int) -> None:
        """Fails before training where `unfreezing` would fail later.

        The frozen stage may end before the callback is made (``"auto"``
        stops when the head stops improving), so its schedule and rates are
        checked here, against the backbone's groups.

        Raises:
            ConfigError: A schedule that does not fit the backbone's groups,
                or rates that cannot work.
        """
        sched.check_rates(
            1.0,  # unfreeze_lr_factor: unused with (lo, hi) rates
            self.stage_lr_decay(frozen_epochs),
            self.discriminative,
            self.warmup_steps,
        )
        parsed = sched.parse_schedule(
            _full_schedule(self.backbone.group_names, self.schedule, frozen_epochs)
        )
        sched.resolve_stages(parsed, self.backbone.group_names, self.backbone.label)

    @property
    def discriminative(self) -> tuple[float, float]:
        """The rates' span, fastai's ``slice(lr / lr_mult, lr)``."""
        return (1.0 / self.lr_mult, 1.0)

    def stage_lr_decay(self, frozen_epochs: int) -> list[float]:
        """The rate of the frozen stage (if any), then of the unfrozen ones."""
        return [1.0, self.lr_decay] if frozen_epochs else [self.lr_decay]


def default_lr_decay(model: keras.Model) -> float:
    """The unfrozen stage's rate multiplier for the model's modality."""
    text = any(x.dtype == "string" for x in tf.nest.flatten(model.inputs))
    return TEXT_LR_DECAY if text else IMAGE_LR_DECAY


def _check_counts(
    epochs: int, freeze_epochs: int | str, lr_mult: float, base_lr: float | None
) -> None:
    arguments.count("epochs", epochs, minimum=0)
    arguments.count("freeze_epochs", freeze_epochs, minimum=0, words=("auto",))
    if freeze_epochs != "auto" and epochs + freeze_epochs == 0:
        raise ConfigError("fine_tune needs epochs + freeze_epochs >= 1. Received: 0.")
    if arguments.positive_number("lr_mult", lr_mult) < 1:
        raise ConfigError(
            f"lr_mult must be a number >= 1. Received: lr_mult={lr_mult!r}."
        )
    if base_lr is not None:
        arguments.rate("base_lr", base_lr)


def _check_options(anneal: Any, cache_features: Any, callbacks: Any) -> None:
    for name, value in (("anneal", anneal), ("cache_features", cache_features)):
        if not isinstance(value, bool):
            raise ConfigError(
                f"{name} must be True or False. Received: {name}={value!r}"
            )
    wrong = [
        c for c in as_list(callbacks) if not isinstance(c, keras.callbacks.Callback)
    ]
    if wrong:
        raise ConfigError(
            "callbacks must be Keras callbacks (keras.callbacks.Callback "
            f"instances). Received an item {wrong[0]!r:.60}"
        )


def _prepare(model: keras.Model, backbone: Backbone, base_lr: float | None) -> None:
    """Compiles if needed, sets the base rate, freezes the base."""
    from tltf.builders import compile_model

    if getattr(model, "optimizer", None) is None:
        compile_model(model, learning_rate=base_lr or DEFAULT_BASE_LR)
    elif base_lr is not None:
        try:
            model.optimizer.learning_rate = float(base_lr)
        except TypeError as error:
            raise ConfigError(
                "base_lr cannot override a learning-rate schedule object; "
                f"leave base_lr=None or compile with a float rate. Received: {error}"
            ) from None
    grouped = grouped_part(model.optimizer)
    if grouped is not None and grouped.built:  # rates left by an earlier run
        grouped.set_multipliers(dict.fromkeys(grouped.built_paths, 1.0))
    train_groups(backbone, [])


def _full_schedule(
    groups: list[str], schedule: str | Mapping[int, sched.StageSpec], start: int
) -> dict[int, sched.StageSpec] | str:
    """The unfreezing schedule shifted by ``start`` frozen epochs.

    Args:
        groups: The backbone's group names.
        schedule: As `fine_tune` takes it.
        start: The number of frozen epochs before it.
    """
    if schedule == "plateau":
        return schedule  # its stage 0 (head) goes on until the first plateau
    if schedule == "all":
        relative: dict[int, sched.StageSpec] = {0: "all"}
    elif isinstance(schedule, str) and schedule.startswith("gradual"):
        sched.parse_schedule(schedule)  # checks the preset's syntax
        every = int(schedule[8:] or 1)
        relative = {k * every: f"top:{k + 1}" for k in range(len(groups))}
    elif isinstance(schedule, Mapping):
        relative = dict(sched.parse_schedule(schedule))
        if start > 0 and relative.get(0) == "head":
            relative.pop(0)  # the frozen epochs already train the head only
    else:
        raise ConfigError(
            "fine_tune's schedule must be 'all', 'gradual', 'gradual:n', "
            "'plateau' or {epoch: spec} counted from the first unfrozen epoch. "
            f"Received: {schedule!r}."
        )
    full = {0: "head"} if start > 0 else {}
    full.update({start + epoch: spec for epoch, spec in relative.items()})
    return full


def _can_cache_frozen_stage(model: keras.Model, callbacks: list) -> bool:
    """Whether the frozen epochs can train the head on cached features."""
    if any(isinstance(cb, keras.callbacks.BackupAndRestore) for cb in callbacks):
        return False  # One resumable fit instead of two.
    return can_cache_features(model)


def _add_frozen_stage_logs(
    history: keras.callbacks.History, model: keras.Model, backbone: Backbone
) -> None:
    """Gives the frozen epochs the stage keys that `StagedUnfreezing` logs."""
    n = len(history.epoch)
    rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    extra = {"stage": 0.0, "trainable_params": float(trainable), "lr_head": rate}
    extra.update({f"lr_{g}": 0.0 for g in backbone.group_names})
    for key, value in extra.items():
        history.history.setdefault(key, [value] * n)
