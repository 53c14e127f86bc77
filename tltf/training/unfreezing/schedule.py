"""Unfreezing schedules and per-group learning rates, as plain data.

A schedule says which layer groups of the base train from which epoch:
``{0: "head", 3: "top:1", 5: "top:2", 7: "all"}``. A stage spec is
``"head"`` (no base group), ``"all"``, ``"top:k"`` (the k groups nearest the
output), a group name, or a list of group names. Presets: ``"gradual"``
(ULMFiT: one more group per epoch), ``"gradual:n"`` (one more every n
epochs), and ``"plateau"`` (one more when the monitored metric stops
improving; its stages have no fixed epochs).

`parse_schedule` checks the syntax (no model needed); `resolve_stages` turns
it into the concrete groups of one backbone, with clear errors.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from tltf.errors import ConfigError

StageSpec = str | Sequence[str]
Schedule = str | Mapping[int, StageSpec] | Sequence[tuple[int, StageSpec]]
PRESETS = ("gradual", "gradual:<n>", "plateau")


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage: from ``epoch`` on (None for plateau stages), ``groups`` train."""

    epoch: int | None
    groups: tuple[str, ...]


def parse_schedule(schedule: Schedule) -> str | list[tuple[int, StageSpec]]:
    """Checks the syntax of a schedule.

    Args:
        schedule: A preset name or ``{epoch: spec}`` / ``[(epoch, spec), ...]``.

    Returns:
        The preset name, or the ``(epoch, spec)`` pairs in order, starting at
        epoch 0 (a missing epoch 0 means ``"head"`` until the first entry).

    Raises:
        ConfigError: Unknown preset, non-integer or non-increasing epochs, a
            malformed spec.
    """
    if isinstance(schedule, str):
        if schedule == "plateau" or schedule == "gradual":
            return schedule
        if schedule.startswith("gradual:") and _positive_int(schedule[8:]):
            return schedule
        raise ConfigError(
            f"Unknown unfreezing schedule preset {schedule!r}. Use one of "
            f"{PRESETS} or a dict {{epoch: spec}}. Received: {schedule!r}."
        )
    items = list(schedule.items()) if isinstance(schedule, Mapping) else schedule
    pairs: list[tuple[int, StageSpec]] = []
    for entry in items:
        epoch, spec = _check_entry(entry, schedule)
        if pairs and epoch <= pairs[-1][0]:
            raise ConfigError(
                "Unfreezing schedule epochs must be strictly increasing; "
                f"epoch {epoch} comes after epoch {pairs[-1][0]}. "
                f"Received: schedule={schedule!r}."
            )
        pairs.append((epoch, spec))
    if not pairs:
        raise ConfigError("The unfreezing schedule is empty. Received: schedule={}.")
    if pairs[0][0] > 0:
        pairs.insert(0, (0, "head"))
    return pairs


def resolve_stages(
    parsed: str | list[tuple[int, StageSpec]],
    group_names: Sequence[str],
    backbone_name: str,
) -> list[Stage]:
    """The stages of a parsed schedule for one backbone.

    Args:
        parsed: Output of `parse_schedule`.
        group_names: The backbone's groups, input side first.
        backbone_name: Used in error messages.

    Returns:
        Stages in order; each stage's groups are in model order.

    Raises:
        ConfigError: An unknown group (e.g. one of another backbone), a
            ``top:k`` beyond the number of groups, or a stage that would
            freeze a group an earlier stage unfroze.
    """
    names = list(group_names)
    if not names:
        raise ConfigError(
            f"Backbone '{backbone_name}' has no layer groups, so nothing can be "
            "unfrozen by stage. Pass layer_groups= to the builder."
        )
    if isinstance(parsed, str):
        every = 1 if parsed in ("gradual", "plateau") else int(parsed[8:])
        epochs = [
            None if parsed == "plateau" else k * every for k in range(len(names) + 1)
        ]
        return [Stage(e, tuple(names[len(names) - k :])) for k, e in enumerate(epochs)]
    stages: list[Stage] = []
    for epoch, spec in parsed:
        groups = _resolve_spec(spec, names, backbone_name)
        if stages and not set(stages[-1].groups) <= set(groups):
            dropped = sorted(set(stages[-1].groups) - set(groups))
            raise ConfigError(
                f"Stage at epoch {epoch} would freeze again group(s) {dropped} "
                "that an earlier stage unfroze; each stage must keep every "
                f"group of the one before. Received: {spec!r}."
            )
        stages.append(Stage(epoch, groups))
    return stages


def stage_multipliers(
    stage: int,
    groups: Sequence[str],
    all_groups: Sequence[str],
    *,
    unfreeze_lr_factor: float,
    stage_lr_decay: float | Sequence[float],
    discriminative: float | tuple[float, float] | None,
) -> dict[str, float]:
    """Learning-rate multipliers (of the optimizer's rate) at one stage.

    ``head`` gets ``stage_lr_decay ** stage`` (or ``stage_lr_decay[stage]``
    for a list, its last value repeating). A trainable base group gets
    that times its own factor: ``unfreeze_lr_factor`` (Lightning's backbone
    ratio), divided by ``discriminative ** depth`` when ``discriminative``
    is a number (depth 0 = group nearest the output; ULMFiT uses 2.6). When
    it is ``(lo, hi)`` (fastai's ``slice(lo, hi)`` relative to the base
    rate), the earliest group gets ``lo``, the head ``hi`` and the groups in
    between are spaced geometrically; ``unfreeze_lr_factor`` is unused.

    Returns:
        ``{"head": m, group: m, ...}`` for the head and ``groups``.
    """
    if isinstance(stage_lr_decay, (int, float)):
        decay = stage_lr_decay**stage
    else:
        decay = stage_lr_decay[min(stage, len(stage_lr_decay) - 1)]
    n = len(all_groups)
    if isinstance(discriminative, tuple):
        lo, hi = discriminative
        factors = {g: lo * (hi / lo) ** (i / n) for i, g in enumerate(all_groups)}
        head = hi
    else:
        ratio = discriminative or 1.0
        factors = {
            g: unfreeze_lr_factor / ratio ** (n - 1 - i)
            for i, g in enumerate(all_groups)
        }
        head = 1.0
    result = {"head": decay * head}
    result.update({g: decay * factors[g] for g in groups})
    return result


def check_rates(
    unfreeze_lr_factor: float,
    stage_lr_decay: Any,
    discriminative: Any,
    warmup_steps: int,
) -> tuple[float | tuple[float, ...], float | tuple[float, float] | None]:
    """Validates the rate arguments.

    Returns:
        ``stage_lr_decay`` (a float, or a tuple of per-stage multipliers) and
        ``discriminative`` (None, a float or ``(lo, hi)``), normalised.
    """
    if not _positive(unfreeze_lr_factor):
        raise ConfigError(
            "unfreeze_lr_factor must be a positive number. "
            f"Received: {unfreeze_lr_factor!r}."
        )
    is_list = isinstance(stage_lr_decay, (list, tuple))
    decays = list(stage_lr_decay) if is_list else [stage_lr_decay]
    if not decays or not all(_positive(v) for v in decays):
        raise ConfigError(
            "stage_lr_decay must be a positive number or a non-empty list of "
            f"them. Received: {stage_lr_decay!r}."
        )
    if not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ConfigError(
            f"warmup_steps must be a non-negative integer. Received: {warmup_steps!r}."
        )
    decay = tuple(float(v) for v in decays) if is_list else float(decays[0])
    return decay, _check_discriminative(discriminative)


def _positive(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and 0 < value < math.inf
    )


def _check_discriminative(discriminative: Any) -> float | tuple[float, float] | None:
    if discriminative is None:
        return None
    if isinstance(discriminative, (int, float)) and discriminative >= 1:
        return float(discriminative)
    if (
        isinstance(discriminative, (tuple, list))
        and len(discriminative) == 2
        and all(isinstance(v, (int, float)) for v in discriminative)
        and 0 < discriminative[0] <= discriminative[1]
    ):
        return (float(discriminative[0]), float(discriminative[1]))
    raise ConfigError(
        "discriminative must be None, a ratio >= 1 between neighbouring "
        "groups (ULMFiT: 2.6), or (lo, hi) with 0 < lo <= hi (fastai's "
        f"slice). Received: {discriminative!r}."
    )


def _resolve_spec(
    spec: StageSpec, names: list[str], backbone_name: str
) -> tuple[str, ...]:
    if spec == "head":
        return ()
    if spec == "all":
        return tuple(names)
    if isinstance(spec, str) and spec.startswith("top:"):
        k = int(spec[4:])
        if k > len(names):
            raise ConfigError(
                f"Stage {spec!r} asks for {k} groups but backbone "
                f"'{backbone_name}' has {len(names)}: {names}. Received: {spec!r}."
            )
        return tuple(names[len(names) - k :])
    wanted = [spec] if isinstance(spec, str) else list(spec)
    unknown = [g for g in wanted if g not in names]
    if unknown:
        raise ConfigError(
            f"Unknown layer group(s) {unknown} for backbone '{backbone_name}'. "
            f"Its groups are {names}; a schedule written for another backbone "
            "must use this one's groups, or 'top:k' / 'all'. "
            f"Received: {spec!r}."
        )
    return tuple(g for g in names if g in wanted)


def _check_entry(entry: Any, schedule: Any) -> tuple[int, StageSpec]:
    try:
        epoch, spec = entry
    except (TypeError, ValueError):
        raise ConfigError(
            f"Each schedule entry must be (epoch, spec). Received: {entry!r}."
        ) from None
    if isinstance(epoch, str) and epoch.isdigit():
        epoch = int(epoch)  # JSON round trips turn keys into strings.
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ConfigError(
            "Schedule epochs must be non-negative integers. "
            f"Received: epoch {epoch!r} in schedule={schedule!r}."
        )
    ok_str = isinstance(spec, str) and (
        not spec.startswith("top:") or _positive_int(spec[4:])
    )
    ok_list = (
        isinstance(spec, (list, tuple))
        and len(spec) > 0
        and all(isinstance(s, str) for s in spec)
    )
    if not (ok_str or ok_list):
        raise ConfigError(
            "A stage spec must be 'head', 'all', 'top:k' (k >= 1), a group "
            f"name or a non-empty list of group names. Received: {spec!r} at "
            f"epoch {epoch}."
        )
    return epoch, spec


def _positive_int(text: str) -> bool:
    return text.isdigit() and int(text) > 0
