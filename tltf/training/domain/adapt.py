"""`adapt_domain`: train on a labelled source domain, adapt to an unlabelled target.

The model trains on source batches as in ``fit`` while each step also draws
a batch of target inputs: MCC makes the target predictions confident without
confusing classes; DANN, CORAL and MMD make the features the output layer
reads look alike across the domains. The default (``method="auto"``) is MCC
for three or more classes, and MMD followed by a round of class-balanced
self-training (`tltf.training.domain.self_training`) for two, where MCC
only sharpens the predictions it already makes. It runs ``model.fit``
itself, so callbacks, strategies and mixed precision work as in training,
and a `CollapseGuard` stops an adaptation that overpowered the task.

Do no harm: unless told not to, it also trains the same model on the source
alone (the same recipe and epochs) and keeps whichever of the two the
label-free criterion of `tltf.training.domain.check` prefers, with a warning
when that is the source-only one. ``weight="auto"`` adapts at each weight of
a small grid and keeps the one the criterion prefers.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tltf import _compat, arguments
from tltf.data.inputs import as_batched, as_list, as_unlabeled, first_batch
from tltf.distribute.scope import strategy_scope
from tltf.errors import ConfigError, DataError
from tltf.model import (
    TransferModel,
    check_data,
    check_inputs,
    parts_of,
    require_model,
)
from tltf.parts import ModelParts, require_head
from tltf.training.domain.check import Verdict, judge, target_balance
from tltf.training.domain.guard import CollapseGuard, chance_loss
from tltf.training.domain.losses import Kernel
from tltf.training.domain.methods import METHODS, check_method, make_method
from tltf.training.domain.recipes import recipe_for
from tltf.training.domain.self_training import (
    pseudo_labelled,
    source_counts,
    with_pseudo_labels,
)
from tltf.training.domain.step import AdaptationStep
from tltf.training.fitting import fit_data
from tltf.training.unfreezing.callback import StagedUnfreezing

#: Which features `adapt_domain` can align.
ALIGN = ("auto", "pooled", "hidden")
#: The weights ``weight="auto"`` tries (each one adaptation run).
AUTO_WEIGHTS = (0.3, 1.0)


def adapt_domain(
    model: keras.Model,
    source: Any,
    target: Any,
    *,
    method: str = "auto",
    epochs: int = 10,
    validation_data: Any = None,
    weight: float | str = 1.0,
    optimizer: keras.optimizers.Optimizer | None = None,
    schedule: str | None = None,
    check: bool = True,
    baseline: keras.Model | None = None,
    discriminator: keras.layers.Layer | None = None,
    kernel: Kernel | None = None,
    self_training: bool | None = None,
    align: str = "auto",
    batch_size: int | None = None,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    verbose: str | int = "auto",
) -> keras.Model:
    """Trains ``model`` on labelled ``source`` data so that it also fits ``target``.

    Each step trains on a source batch (the compiled loss) and draws a batch
    of the unlabelled target inputs, both through one forward pass.
    ``"mcc"`` adds Minimum Class Confusion on the target predictions (Jin et
    al., ECCV 2020: temperature 2.5, weight 1): it needs no discriminator,
    costs no more than ``fit`` on the same images, and closed 65% and 85% of
    the gap on MNIST -> USPS and USPS -> MNIST in
    ``benchmarks/domain_adaptation``. With two classes its confusion term
    reduces to making each prediction more confident, which amplifies the
    source model's errors (-3.3 points on one Amazon review shift there).
    The default, ``"auto"``, is therefore MCC for three or more classes (and
    for any model whose only trainable layer is the output layer), and for
    two classes MMD with one round of class-balanced self-training
    (``self_training``): +2.6 points over source-only training on the 12
    Amazon review shifts' validation parts, against +1.9 for MCC.
    ``"dann"`` trains a domain discriminator through a gradient-reversal
    layer (Ganin et al., JMLR 2016); ``"coral"`` aligns the feature
    covariances (Sun & Saenko 2016); ``"mmd"`` the kernel mean embeddings
    (Long et al. 2015). Nothing is added to the model: it saves, exports and
    serves as before.

    Each method brings its optimizer unless ``optimizer`` is given. MCC's,
    when the base trains, is Transfer-Learning-Library's digits recipe, the
    one its published numbers were reproduced with here: SGD, Nesterov
    momentum 0.9, weight decay 1e-3, rate ``0.01 * (1 + 0.001 i)^-0.75`` at
    step ``i``, constant weight. With a frozen base (only the head adapts)
    it keeps the model's compiled optimizer: SGD's steps follow the scale of
    the frozen features and can diverge (`tltf.training.domain.recipes`);
    so it does with a `tltf.StagedUnfreezing` callback, whose per-group
    rates are built on the compiled optimizer. DANN, CORAL and MMD train with the
    compiled optimizer and ramp their weight up as in the DANN paper.

    Do no harm (``check=True``): the same model is also trained on the
    source alone, from the same starting weights, with the same recipe and
    epochs (or ``baseline`` is used), and the adapted model is kept only if
    its target predictions are at least as balanced over the classes
    (`tltf.training.domain.check.target_balance`, no label used); otherwise
    the source-only weights come back and a warning says so. A collapsed
    adaptation (`CollapseGuard`) also brings back the source-only weights.
    This costs one source-only run (about 0.6 of an MCC run: it reads half
    the images). ``weight="auto"`` adapts once per weight in `AUTO_WEIGHTS`
    and keeps the best by the same criterion: two adaptation runs (each of
    them two with self-training) and the source-only run.

    Args:
        model: A compiled tltf classifier. What can adapt is what is
            trainable: unfreeze base groups (`tltf.set_trainable_groups`,
            `tltf.StagedUnfreezing`) or build the head with ``hidden_units``.
            On a model as the builders make it (frozen base, no hidden
            layer) MCC adapts the output layer alone; the feature methods
            need trainable features and say so.
        source: Labelled source data in any form `fit_frozen_head` takes.
        target: Unlabelled target inputs: an array, a list of strings, a
            batched dataset of inputs (labels, if any, are ignored) or a
            `tltf.data.LoadedData` (its training split, labels ignored).
        method: ``"auto"`` (above), ``"mcc"``, ``"dann"``, ``"coral"`` or
            ``"mmd"``. ``model.history.method`` records the one that ran.
        epochs: Passes over the source data (target batches are drawn
            alongside, reshuffled and repeated as needed).
        validation_data: Labelled *target* data to report on each epoch
            (``val_*`` logs), or None. Never used for any choice.
        weight: The (largest) weight of the adaptation term; 0 trains on the
            source alone with the method's recipe; ``"auto"`` picks one of
            `AUTO_WEIGHTS` by the label-free criterion.
        optimizer: The optimizer to train with (a fresh copy); None for the
            method's own (above).
        schedule: ``"ramp"`` (``weight * (2 / (1 + exp(-10 p)) - 1)`` at
            training progress ``p``), ``"constant"``, or None for the
            method's (constant for MCC, ramp for the others).
        check: Compare with source-only training and keep the better by the
            criterion (multiclass models; others skip the check).
        baseline: A model of the same architecture already trained on the
            source alone from the same starting weights, to compare with
            instead of training one (saves that run).
        discriminator: DANN's domain classifier, features -> one logit;
            None for the reference one: two ReLU layers of 1024, each with
            dropout 0.5 (`tltf.training.domain.default_discriminator`).
        kernel: MMD's ``kernel(a, b)``; None for the sum of five Gaussian
            kernels (as the reference DAN code sums them).
        self_training: After the adaptation run, label the half of the
            target inputs the model is most confident about (each class in
            its share of the source labels) and run again from the starting
            weights on the source and those examples
            (`tltf.training.domain.self_training`): two runs instead of one,
            and the target inputs are held in memory once. Multiclass
            (softmax) heads only. None: on when ``method="auto"`` chose MMD
            for two classes, else off.
        align: Which features DANN, CORAL and MMD align: ``"pooled"`` (the
            base's pooled output), ``"hidden"`` (the head's last hidden
            layer), or ``"auto"``: pooled when the base trains, else hidden.
        batch_size: Batch size for arrays and lists (source and target);
            None for 32, or the source dataset's own batches.
        callbacks: Keras callbacks (they see every run).
        verbose: As in ``fit``.

    Returns:
        ``model`` itself, adapted (or, if the check preferred it, trained on
        the source alone). ``model.history`` is the adaptation run's (with
        ``weight="auto"``, the kept weight's): it logs
        ``task_loss``, ``adaptation_loss``, ``adaptation_weight``,
        ``feature_spread`` (how far apart the examples' features are, 0 to
        1), ``domain_accuracy`` (DANN, CORAL, MMD: near 0.5 when the domains
        look alike) and the compiled metrics; ``model.history.adaptation``
        is the check's verdict as a dict (criterion, its values, which model
        was kept and why), or None without a check;
        ``model.history.method`` the method that ran, and
        ``model.history.pseudo_labels`` how many target inputs self-training
        labelled (None without it).

    Raises:
        ConfigError: Not a compiled tltf classifier, nothing trainable before
            the output layer for a feature method (DANN, CORAL, MMD), an
            unknown method or schedule, MCC or self-training on a head that
            is not multiclass, a bad count, or a bad weight or baseline.
        DataError: Empty target data, or target inputs of another kind or
            shape than the model takes.

    Example:
        >>> model = tltf.build_image_classifier(
        ...     "keras:mobilenet_v2", 3, weights=None, input_shape=(32, 32, 3),
        ...     hidden_units=(64,))
        >>> tltf.adapt_domain(model, (x_source, y_source), x_target, epochs=2)
    """
    require_model(model)
    weights = _check_weight(weight)
    epochs = arguments.count("epochs", epochs)
    if batch_size is not None:
        batch_size = arguments.count("batch_size", batch_size)
    callbacks = as_list(callbacks)
    # Unknown names fail here, before the model is looked at.
    check_method(method, discriminator, kernel, names=("auto", *METHODS))
    if self_training not in (None, True, False):
        raise ConfigError(
            "self_training must be True, False or None (the method's default). "
            f"Received: self_training={self_training!r}"
        )
    parts = parts_of(model)
    chosen = _choose_method(method, model, parts, callbacks)
    if method == "auto":  # kernel= or discriminator= may not fit the choice.
        check_method(chosen, discriminator, kernel)
    # _choose_method raises nothing: a bad schedule is reported before the model.
    schedule = _check_schedule(schedule, chosen)
    reads_logits = chosen == "mcc"  # MCC reads the logits, the others features.
    align, base_trains = _check_model(
        model, parts, callbacks, align, chosen, reads_logits
    )
    task = require_head(parts).task
    if self_training is None:
        self_training = method == "auto" and chosen == "mmd" and task == "multiclass"
    elif self_training and task != "multiclass":
        raise ConfigError(
            "self_training labels the target with the classes of a multiclass "
            f"head (softmax); model '{model.name}' is {task}. Pass "
            "self_training=False."
        )
    method = chosen
    check_data(model, source, "source")
    train = as_batched(source, batch_size, what="source", shuffle=True)
    first = first_batch(train, "source", "Pass at least one labelled example.")
    batch_size = int(tf.shape(tf.nest.flatten(first)[0])[0])
    targets = target_batches(model, target, batch_size)
    # StagedUnfreezing rebuilds the compiled optimizer with its per-group
    # rates: it keeps that optimizer rather than MCC's SGD schedule.
    staged = any(isinstance(cb, StagedUnfreezing) for cb in callbacks)
    run = _Runner(
        model, method, train, targets, first, schedule, align,
        optimizer, base_trains and not staged,
        dict(
            epochs=int(epochs), validation_data=validation_data,
            callbacks=callbacks, verbose=verbose,
        ),
        (discriminator, kernel),
    )  # fmt: skip
    if weights == [0.0]:
        model.history = run(0.0).history
        model.history.adaptation = None
        return _record(model, method, None)
    checking = check and task == "multiclass"
    entry = model.get_weights()
    reference = None
    if checking:
        reference = _baseline_weights(model, baseline) or run(0.0).weights
        model.set_weights(reference)
        source_only = target_balance(model, target, batch_size)
    outcomes = {}
    for w in weights:
        model.set_weights(entry)
        outcomes[w] = run(w)
        if self_training and not outcomes[w].collapsed:
            retrained = _self_train(run, target, batch_size, entry, w)
            outcomes[w] = retrained or outcomes[w]
        outcomes[w].criterion = (
            target_balance(model, target, batch_size) if checking else 0.0
        )
    model = _keep(model, outcomes, reference, source_only if checking else None)
    kept = model.history.adaptation
    if kept is not None and kept["kept"] == "source_only":
        return _record(model, method, None)
    weight = kept["weight"] if kept is not None else weights[0]
    return _record(model, method, outcomes[weight].pseudo_labels)


def _choose_method(
    method: str, model: keras.Model, parts: ModelParts, callbacks: list
) -> str:
    """``"auto"``: MCC for 3+ classes or a trainable output layer alone, else MMD."""
    if method != "auto":
        return method
    try:
        head = require_head(parts)
    except ConfigError:
        return "mcc"  # _check_model says what is wrong with the model.
    if head.task != "multiclass":
        return "mmd"  # MCC needs a softmax.
    if head.num_outputs > 2:
        return "mcc"
    features_train = bool(head.hidden) or _base_trains(model, head, callbacks)
    return "mmd" if features_train else "mcc"


def _self_train(run: _Runner, target: Any, batch_size: int, entry: list, weight: float):
    """The second run of self-training, or None when nothing got a label.

    The model as the first run left it labels the target inputs it is most
    confident about (`tltf.training.domain.self_training`); the run starts
    again from ``entry`` on the source and those.
    """
    shares = run.class_shares()
    inputs, labels = pseudo_labelled(run.model, target, batch_size, shares)
    if len(labels) == 0:
        return None
    mixed = with_pseudo_labels(run.train, inputs, labels, batch_size, run.source_size())
    run.model.set_weights(entry)
    total = run.source_size() + len(labels)
    outcome = run.on(mixed, steps=-(-total // batch_size))(weight)
    outcome.pseudo_labels = len(labels)
    return outcome


def _record(model: keras.Model, method: str, pseudo_labels: int | None):
    model.history.method = method
    model.history.pseudo_labels = pseudo_labels
    return model


class _Outcome:
    """One run: its history, final weights, and whether it collapsed."""

    def __init__(self, history, weights, collapsed: bool) -> None:
        self.history, self.weights, self.collapsed = history, weights, collapsed
        self.criterion: float | None = None
        self.pseudo_labels: int | None = None


class _Runner:
    """Runs one training of ``model`` at an adaptation weight (0: source only)."""

    def __init__(
        self, model, method, train, targets, first, schedule, align,
        optimizer, base_trains, fit_args, extras,
    ) -> None:  # fmt: skip
        self.model, self.method, self.train, self.targets = (
            model,
            method,
            train,
            targets,
        )
        self.first, self.schedule, self.align = first, schedule, align
        self.optimizer, self.fit_args, self.extras = optimizer, fit_args, extras
        self.base_trains = base_trains
        self.steps = _steps(train)
        self._counts: np.ndarray | None = None

    def on(self, train: tf.data.Dataset, steps: int) -> _Runner:
        """The same run on other (batched, labelled) training data."""
        other = copy.copy(self)
        other.train, other.steps = train, steps
        return other

    def _source_counts(self) -> np.ndarray:
        if self._counts is None:
            head = require_head(parts_of(self.model))
            self._counts = source_counts(self.train, head.num_outputs)
        return self._counts

    def class_shares(self) -> np.ndarray:
        """Each class's share of the source labels."""
        counts = self._source_counts()
        return counts / max(int(counts.sum()), 1)

    def source_size(self) -> int:
        """Labelled source examples."""
        return int(self._source_counts().sum())

    def __call__(self, weight: float) -> _Outcome:
        model = self.model
        recipe = recipe_for(self.method, model, self.optimizer, self.base_trains)
        chosen = make_method(self.method, *self.extras) if weight else None
        compiled = model.optimizer
        with strategy_scope(model=model):
            step = AdaptationStep(
                model,
                chosen,
                weight=weight,
                ramped=self.schedule == "ramp",
                total_steps=self.steps * self.fit_args["epochs"],
                learning_rate=_learning_rate(compiled),
                align=self.align,
                weight_decay=recipe.weight_decay,
            )
            if chosen is not None and chosen.domain_classifier is not None:
                chosen.domain_classifier.build(
                    (None, _feature_dim(step.parts, self.align))
                )
                step.optimizer.build(chosen.variables)
            if not compiled.built and _compat.can_symbolic_build(model):
                _compat.symbolic_build(model, self.first)  # metrics, loss
            model.optimizer = recipe.optimizer
            model.optimizer.build(model.trainable_variables)
        data = (
            self.train
            if chosen is None
            else tf.data.Dataset.zip((self.train, self.targets))
        )
        try:
            guard = _run(model, step, data, **self.fit_args)
        finally:
            model.optimizer = compiled
        collapsed = guard.collapsed_epoch is not None
        return _Outcome(model.history, model.get_weights(), collapsed)


def _run(model, step, data, *, epochs, validation_data, callbacks, verbose):
    """``fit`` with the adaptation step attached, detached whatever happens."""
    resets = keras.callbacks.LambdaCallback(on_epoch_begin=lambda *_: step.reset())
    guard = CollapseGuard(
        step.weight, chance_loss(step.head.task, step.head.num_outputs)
    )
    with model.train_step_replaced(step):
        fit_data(
            model,
            data,
            validation_data,
            epochs=epochs,
            callbacks=[resets, guard, *callbacks],
            verbose=verbose,
        )
    return guard


def _keep(model, outcomes, reference, source_only) -> keras.Model:
    """Puts back the weights the check keeps; records and warns."""
    criteria = {w: (None if o.collapsed else o.criterion) for w, o in outcomes.items()}
    if reference is None:  # No check: the (only) run as it ended.
        ((weight, outcome),) = outcomes.items()
        model.history = outcome.history
        model.history.adaptation = None
        return model
    verdict: Verdict = judge(source_only, criteria)
    if verdict.kept == "source_only":
        model.set_weights(reference)
        model.history = next(iter(outcomes.values())).history
        warnings.warn(
            "adapt_domain kept the model trained on the source alone: "
            f"{verdict.reason}. Adapting would likely have cost target accuracy; "
            "check on labelled target data, or try another method or a smaller "
            "weight.",
            stacklevel=2,
        )
    else:
        outcome = outcomes[verdict.weight]
        model.set_weights(outcome.weights)
        model.history = outcome.history
    model.history.adaptation = verdict.as_dict()
    return model


def _baseline_weights(model: keras.Model, baseline: keras.Model | None) -> list | None:
    if baseline is None:
        return None
    ours, theirs = model.get_weights(), baseline.get_weights()
    if len(ours) != len(theirs) or any(
        a.shape != b.shape for a, b in zip(ours, theirs)
    ):
        raise ConfigError(
            f"baseline '{baseline.name}' is not the same architecture as model "
            f"'{model.name}' (its weights differ in number or shape). Pass a copy "
            "of the model trained on the source alone, or baseline=None."
        )
    return theirs


def _check_weight(weight: float | str) -> list[float]:
    if isinstance(weight, str) and weight == "auto":
        return list(AUTO_WEIGHTS)
    return [arguments.positive_number("weight", weight, zero=True)]


def _check_schedule(schedule: str | None, method: str) -> str:
    if schedule is None:
        return "constant" if method == "mcc" else "ramp"
    if schedule not in ("ramp", "constant"):
        raise ConfigError(
            "schedule must be 'ramp' (DANN's), 'constant' or None (the method's). "
            f"Received: schedule={schedule!r}"
        )
    return schedule


def target_batches(model: keras.Model, target: Any, batch_size: int) -> tf.data.Dataset:
    """The target inputs as an endless dataset of batches of ``batch_size``.

    Arrays and lists are reshuffled on every pass; a dataset keeps its own
    batching and order (labels dropped).

    Raises:
        DataError: Empty target data, or inputs the model does not take.
    """
    ds = as_unlabeled(target, batch_size, what="target", shuffle=True)
    check_inputs(model, ds, "target")
    _check_target_shape(model, ds)
    return ds.repeat().prefetch(tf.data.AUTOTUNE)


def _check_target_shape(model: keras.Model, ds: tf.data.Dataset) -> None:
    spec = tf.nest.flatten(ds.element_spec)
    wanted = tf.nest.flatten(model.inputs)
    if len(spec) != len(wanted):
        raise DataError(
            f"target has {len(spec)} input(s) per example; model '{model.name}' "
            f"takes {len(wanted)}."
        )
    for got, want in zip(spec, wanted):
        got_shape, want_shape = list(got.shape[1:]), list(want.shape[1:])
        fits = len(got_shape) == len(want_shape) and all(
            a is None or b is None or a == b for a, b in zip(got_shape, want_shape)
        )
        if not fits:
            raise DataError(
                f"target inputs have shape {got_shape} per example; model "
                f"'{model.name}' takes {want_shape}. Resize the target data like "
                "the source (or pass a batched dataset of inputs)."
            )
    for _ in ds.take(1):
        return
    raise DataError("target is empty. Pass at least one target input.")


def _check_model(
    model: keras.Model,
    parts: ModelParts,
    callbacks: list,
    align: str,
    method: str,
    reads_logits: bool,
) -> tuple[str, bool]:
    """Checks the model can adapt; returns the features to align, and whether
    the base trains. ``reads_logits``: the method acts on the predictions."""
    try:
        head = require_head(parts)
    except ConfigError as err:
        raise ConfigError(f"adapt_domain needs a tltf classifier: {err}") from err
    if not isinstance(model, TransferModel):
        raise ConfigError(
            f"Model '{model.name}' is not a tltf.TransferModel; build it with "
            "tltf.build_image_classifier or tltf.build_text_classifier."
        )
    if not model.compiled:
        raise ConfigError(
            f"Model '{model.name}' is not compiled. Call tltf.compile_model(model) "
            "or model.compile(...) before adapt_domain."
        )
    if method == "mcc" and head.task != "multiclass":
        raise ConfigError(
            f"method='mcc' needs a multiclass head (softmax); model '{model.name}' "
            f"is {head.task}. Pass method='dann', 'coral' or 'mmd'."
        )
    if align not in ALIGN:
        raise ConfigError(
            f"align must be one of {list(ALIGN)}. Received: align={align!r}"
        )
    base_trains = _base_trains(model, head, callbacks)
    if align == "auto":
        align = "pooled" if base_trains else "hidden"
    # MCC acts on the predictions, so the output layer alone can adapt to them;
    # the feature methods need features that move.
    if align == "hidden" and not head.hidden and not base_trains and not reads_logits:
        raise ConfigError(
            f"Nothing before the output layer of '{model.name}' can train, so "
            f"method={method!r} has no features to align. Unfreeze base groups "
            "(tltf.set_trainable_groups(model, [...]) or a tltf.StagedUnfreezing "
            "callback), build the head with hidden_units=(256,), or use "
            "method='mcc' (it adapts the output layer alone)."
        )
    if align == "pooled" and not base_trains:
        raise ConfigError(
            f"The base of '{model.name}' is frozen, so its pooled features cannot "
            "adapt. Unfreeze base groups, or pass align='hidden' with a head "
            "built with hidden_units."
        )
    return align, base_trains


def _base_trains(model: keras.Model, head: Any, callbacks: list) -> bool:
    """Whether anything before the head trains (now, or staged later)."""
    head_ids = {id(v) for v in head.trainable_variables}
    return any(id(v) not in head_ids for v in model.trainable_variables) or any(
        isinstance(cb, StagedUnfreezing) for cb in callbacks
    )


def _learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    """The compiled optimizer's rate: the discriminator learns as fast (as in DANN)."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def _feature_dim(parts: ModelParts, align: str) -> int:
    if align == "hidden" and parts.head.hidden:
        return int(parts.head.hidden[-1].units)
    return int(parts.pooled_shape()[-1])


def _steps(ds: tf.data.Dataset) -> int:
    steps = int(ds.cardinality())
    if steps >= 0:
        return steps
    return int(ds.reduce(np.int64(0), lambda n, _: n + 1))
