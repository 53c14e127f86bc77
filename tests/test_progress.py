"""What training prints (`tltf.progress`): a stage as one line, epochs as the
user counts them, no terminal codes when the output is not a terminal."""

from __future__ import annotations

import io
import sys

import pytest

from tltf.progress import EpochProgbar, StageLine, resolve_verbose


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run_stage(line: StageLine, losses: list[float]) -> None:
    line.on_train_begin()
    for epoch, loss in enumerate(losses):
        line.on_epoch_end(epoch, {"loss": loss, "val_loss": loss + 0.1})
    line.on_train_end()


@pytest.mark.parametrize("stream", [io.StringIO, _Terminal])
def test_stage_line_ends_as_one_line_with_the_best_epoch(monkeypatch, stream):
    out = stream()
    monkeypatch.setattr(sys, "stdout", out)
    _run_stage(StageLine("Head only (base frozen)", 50, "val_loss"), [0.9, 0.5, 0.7])
    final = out.getvalue().split("\r")[-1]
    assert final == (
        "Head only (base frozen): 3/50 epochs, best epoch 2: "
        "loss: 0.5000 - val_loss: 0.6000\n"
    )
    assert out.getvalue().count("\n") == 1
    if stream is io.StringIO:
        assert "\r" not in out.getvalue()


def test_stage_line_without_a_monitor_shows_the_last_epoch(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    _run_stage(StageLine("Head", 2), [0.9, 0.8])
    assert (
        out.getvalue()
        == "Head: 2/2 epochs, last epoch: loss: 0.8000 - val_loss: 0.9000\n"
    )


def test_epochs_after_a_frozen_stage_count_from_one(capsys):
    bar = EpochProgbar(12, shown=False)
    bar.set_params({"verbose": 2, "epochs": 15, "steps": 1})
    for epoch in (12, 13, 14):
        bar.on_epoch_begin(epoch)
    assert capsys.readouterr().out.splitlines() == [
        "Epoch 1/3",
        "Epoch 2/3",
        "Epoch 3/3",
    ]


def test_frozen_epochs_of_the_same_fit_are_labelled(capsys):
    bar = EpochProgbar(1)
    bar.set_params({"verbose": 2, "epochs": 3, "steps": 1})
    for epoch in range(3):
        bar.on_epoch_begin(epoch)
    assert capsys.readouterr().out.splitlines() == [
        "Head only (base frozen): epoch 1/1",
        "Epoch 1/2",
        "Epoch 2/2",
    ]


def test_auto_verbosity_is_plain_lines_off_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert resolve_verbose("auto") == 2
    monkeypatch.setattr(sys, "stdout", _Terminal())
    assert resolve_verbose("auto") == 1
    assert resolve_verbose(0) == 0
