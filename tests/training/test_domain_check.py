"""MCC and the do-no-harm check: the loss, the recipe, the verdict, the wiring."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import tltf
from tests.support.helpers import same
from tests.training.test_domain import moons, moons_classifier
from tltf.training.domain import adapt as adapt_module
from tltf.training.domain.check import judge, target_balance
from tltf.training.domain.losses import mcc_loss
from tltf.training.domain.recipes import InverseDecay, recipe_for

# --- the MCC loss ---


def mcc_by_hand(logits: np.ndarray, temperature: float = 2.5) -> float:
    """TLlib's MCC written out with loops, in float64."""
    z = logits / temperature
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    n, k = p.shape
    w = np.array([1 + np.exp(sum(q * np.log(q + 1e-5) for q in row)) for row in p])
    w = n * w / w.sum()
    c = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            c[i, j] = sum(p[b, i] * w[b] * p[b, j] for b in range(n))
    rowsum = c.sum(1)
    c = np.array([[c[i, j] / rowsum[j] for j in range(k)] for i in range(k)])
    return (c.sum() - np.trace(c)) / k


def test_mcc_loss_is_tllibs_formula_on_a_hand_computed_batch():
    logits = np.array(
        [[4.0, 0.0, -1.0], [0.5, 0.2, 0.1], [-2.0, 3.0, 1.0], [0.0, 0.0, 5.0]],
        "float32",
    )
    expected = mcc_by_hand(logits.astype("float64"))
    assert float(mcc_loss(logits)) == pytest.approx(expected, rel=1e-5)
    assert 0.0 < expected < 2.0


def test_mcc_loss_is_low_for_confident_distinct_classes_and_high_when_confused():
    distinct = np.eye(4, dtype="float32") * 40.0
    confused = np.zeros((4, 4), "float32")
    assert float(mcc_loss(distinct)) < 1e-3
    assert float(mcc_loss(confused)) == pytest.approx(0.75, rel=1e-5)  # (16-4)/16


def test_mccs_recipe_is_sgd_nesterov_with_tllibs_decaying_rate():
    model = moons_classifier()
    recipe = recipe_for("mcc", model)
    assert isinstance(recipe.optimizer, keras.optimizers.SGD)
    assert recipe.optimizer.nesterov and recipe.optimizer.momentum == 0.9
    assert recipe.weight_decay == 1e-3
    rate = InverseDecay(0.01)
    assert float(rate(0)) == pytest.approx(0.01)
    assert float(rate(1000)) == pytest.approx(0.01 * 2**-0.75, rel=1e-5)
    mine = keras.optimizers.Adam(3e-4)
    assert recipe_for("mcc", model, mine).weight_decay == 0.0
    assert recipe_for("dann", model).name == "compiled"
    # Only the head trains: the compiled optimizer (SGD can diverge there).
    assert recipe_for("mcc", model, base_trains=False).name == "compiled"


def test_mcc_adapts_the_model_and_gives_its_optimizer_back():
    keras.utils.set_random_seed(0)
    model = moons_classifier()
    compiled = model.optimizer
    (xs, ys), (xt, _) = moons(64, 0), moons(64, 1, 35.0)
    before = model.get_weights()
    # MCC by name: on two classes the default is MMD with self-training.
    tltf.adapt_domain(
        model, (xs, ys), xt, method="mcc", epochs=2, check=False, verbose=0
    )
    assert not same(model.get_weights(), before)
    assert model.optimizer is compiled
    logs = model.history.history
    assert "domain_accuracy" not in logs  # MCC has no discriminator.
    assert np.isfinite(logs["adaptation_loss"]).all()
    assert logs["adaptation_weight"] == [1.0, 1.0]  # Constant, as in TLlib.
    assert model.history.adaptation is None


# --- the criterion and the verdict ---


def fixed_classifier(bias: list[float]) -> keras.Model:
    """Predicts from the first input and a fixed bias: class shares by design."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2)])
    model.layers[-1].set_weights([np.array([[1.0, -1.0]]), np.array(bias)])
    return model


def test_target_balance_is_one_for_even_predictions_and_zero_for_one_class():
    x = np.linspace(-1, 1, 100).reshape(-1, 1).astype("float32")
    assert target_balance(fixed_classifier([0.0, 0.0]), x, 32) == pytest.approx(1.0)
    assert target_balance(fixed_classifier([5.0, 0.0]), x, 32) == pytest.approx(0.0)
    skewed = target_balance(fixed_classifier([1.0, 0.0]), x, 32)  # x > -0.5: 3 in 4
    assert skewed == pytest.approx(
        -(0.75 * np.log(0.75) + 0.25 * np.log(0.25)) / np.log(2), abs=0.02
    )


def test_judge_keeps_source_only_when_adapting_unbalanced_the_predictions():
    verdict = judge(0.9, {1.0: 0.5})
    assert verdict.kept == "source_only" and verdict.weight is None
    assert "less balanced" in verdict.reason
    assert judge(0.9, {1.0: 0.9}).kept == "adapted"  # A tie adapts.
    assert judge(0.9, {0.3: 0.95, 1.0: 0.99}).weight == 1.0
    assert judge(0.9, {0.3: 0.95, 1.0: None}).weight == 0.3  # 1.0 collapsed.
    collapsed = judge(0.9, {1.0: None})
    assert collapsed.kept == "source_only" and "collapsed" in collapsed.reason
    assert judge(0.9, {0.3: 0.95}).as_dict()["adapted"] == {"0.3": 0.95}


# --- the check inside adapt_domain ---


@pytest.fixture()
def shifted_moons():
    keras.utils.set_random_seed(0)
    return moons(64, 0), moons(64, 1, 35.0)[0]


def scripted_criterion(monkeypatch, values: list[float]) -> None:
    """`target_balance` as adapt_domain sees it returns ``values`` in turn."""
    answers = iter(values)
    monkeypatch.setattr(adapt_module, "target_balance", lambda *a: next(answers))


def test_the_check_returns_the_source_only_model_when_the_criterion_prefers_it(
    shifted_moons, monkeypatch
):
    (xs, ys), xt = shifted_moons
    baseline = moons_classifier()
    tltf.adapt_domain(baseline, (xs, ys), xt, weight=0, epochs=2, verbose=0)
    model = moons_classifier()
    model.set_weights(baseline.get_weights())  # Train on from the same state.
    scripted_criterion(monkeypatch, [0.9, 0.4])  # source only, then adapted

    with pytest.warns(UserWarning, match="kept the model trained on the source alone"):
        tltf.adapt_domain(model, (xs, ys), xt, epochs=2, baseline=baseline, verbose=0)

    assert same(model.get_weights(), baseline.get_weights())
    verdict = model.history.adaptation
    assert verdict["kept"] == "source_only"
    assert verdict["criterion"] == "target_balance"
    assert verdict["source_only"] == 0.9 and verdict["adapted"] == {"1": 0.4}


def test_the_check_trains_its_own_source_only_run_and_keeps_a_better_adaptation(
    shifted_moons, monkeypatch, recwarn
):
    (xs, ys), xt = shifted_moons
    model = moons_classifier()
    entry = model.get_weights()
    scripted_criterion(monkeypatch, [0.5, 0.8])
    tltf.adapt_domain(model, (xs, ys), xt, epochs=2, verbose=0)
    assert not same(model.get_weights(), entry)
    assert model.history.adaptation["kept"] == "adapted"
    assert model.history.adaptation["weight"] == 1.0
    assert "adaptation_loss" in model.history.history
    assert not [w for w in recwarn if "kept the model" in str(w.message)]


def test_weight_auto_adapts_at_each_weight_and_keeps_the_most_balanced(
    shifted_moons, monkeypatch
):
    (xs, ys), xt = shifted_moons
    model = moons_classifier()
    scripted_criterion(monkeypatch, [0.5, 0.9, 0.7])  # source, 0.3, 1.0
    # MCC by name: its constant weight is what the logs are checked against.
    tltf.adapt_domain(
        model, (xs, ys), xt, method="mcc", weight="auto", epochs=1, verbose=0
    )
    verdict = model.history.adaptation
    assert verdict["adapted"] == {"0.3": 0.9, "1": 0.7}
    assert verdict["kept"] == "adapted" and verdict["weight"] == 0.3
    assert model.history.history["adaptation_weight"] == [pytest.approx(0.3)]


def test_a_collapse_brings_back_the_source_only_model():
    # The guard's own case (test_domain_guard): MMD at a weight far too large
    # collapses within a few epochs; the check then returns the source-only
    # model, not the collapsed run's best epoch.
    keras.utils.set_random_seed(0)
    model = moons_classifier()
    (xs, ys), (xt, _) = moons(256, 0), moons(256, 1, 35.0)
    baseline = moons_classifier()
    baseline.set_weights(model.get_weights())
    tltf.adapt_domain(baseline, (xs, ys), xt, weight=0, epochs=3, verbose=0)
    with pytest.warns(UserWarning) as said:
        tltf.adapt_domain(
            model, (xs, ys), xt, method="mmd", weight=30.0, epochs=20,
            batch_size=32, baseline=baseline, verbose=0,
        )  # fmt: skip
    messages = " ".join(str(w.message) for w in said)
    assert "adapt_domain stopped after epoch" in messages
    assert "kept the model trained on the source alone" in messages
    assert same(model.get_weights(), baseline.get_weights())
    assert "collapsed" in model.history.adaptation["reason"]


def test_weight_zero_trains_on_the_source_alone_and_bad_weights_are_refused(
    shifted_moons,
):
    (xs, ys), xt = shifted_moons
    model = moons_classifier()
    tltf.adapt_domain(model, (xs, ys), xt, weight=0, epochs=1, verbose=0)
    logs = model.history.history
    assert logs["adaptation_loss"] == [0.0] and model.history.adaptation is None
    for bad in ("big", -1.0, float("nan"), True):
        with pytest.raises(tltf.ConfigError, match="weight must be a finite number"):
            tltf.adapt_domain(model, (xs, ys), xt, weight=bad)
    with pytest.raises(tltf.ConfigError, match="not the same architecture"):
        tltf.adapt_domain(model, (xs, ys), xt, baseline=fixed_classifier([0, 0]))


def test_mcc_composes_with_staged_unfreezing():
    from tests.support.helpers import weights_of
    from tests.training.test_domain import shifted_images, tiny_classifier

    xs, ys = shifted_images(16, seed=0)
    xt, _ = shifted_images(16, seed=1, offset=100.0)
    model = tiny_classifier()  # Frozen base, no hidden units.
    base = model.get_layer("backbone").model
    block1, block3 = (
        weights_of(base.get_layer(f"{b}_conv")) for b in ("block1", "block3")
    )
    callback = tltf.StagedUnfreezing({0: "head", 1: "block3"}, verbose=0)
    tltf.adapt_domain(model, (xs, ys), xt, epochs=2, callbacks=[callback], verbose=0)
    assert same(weights_of(base.get_layer("block1_conv")), block1)
    assert not same(weights_of(base.get_layer("block3_conv")), block3)
    assert model.history.history["stage"] == [0, 1]
    assert model.history.adaptation["criterion"] == "target_balance"
