"""Dependency resolution between steps (seed 003): whether a waiting step is ready, waits, is
skipped or needs a person, and what a failed upstream means for it.

Vocabulary. An upstream step has *succeeded* when approved, running or completed. It has
*failed finally* when skipped, cancelled or compensated: nothing can bring it back, so waiting
for it is pointless. It has *failed for now* when rejected, expired or failed: an override, a
reopening or a retry can still turn it around, so `wait` keeps waiting. Per dependency, when
the upstream does not succeed:

| resolution | blocks                        | enhances            | optional            |
| ---------- | ----------------------------- | ------------------- | ------------------- |
| wait       | wait (skip if failed finally) | proceed without it  | proceed without it  |
| skip       | skip the dependent step       | skip the dependent  | proceed without it  |
| fallback   | proceed with the fallback     | proceed with it     | proceed with it     |
| ask_user   | hold until a person decides   | hold for a person   | hold for a person   |

`optional` + `skip` skips the *dependency*, not the step (seed 003: "just skip this data, the
task runs normally"). `blocks` needs its upstream to succeed; `enhances` and `optional` only
need it resolved in any terminal way. A `when` branch is taken only if the decision step chose
that value, and a branch not taken is skipped. A merge step waits for every inbound step to
resolve and proceeds if at least one of them succeeded. An upstream whose failure a person
resolved by hand (`waived`) counts as met.

What these verdicts do to an item is the progression's business (`domain/run.py`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from signoff.domain.states import StepState
from signoff.domain.template_model import (
    Dependency,
    DependencyEffect,
    Resolution,
    StepKind,
    TemplateDefinition,
)

SUCCEEDED: frozenset[StepState] = frozenset(
    {StepState.APPROVED, StepState.RUNNING, StepState.COMPLETED}
)
"""Upstream states that satisfy a blocking dependency."""

FAILED_FINALLY: frozenset[StepState] = frozenset(
    {StepState.SKIPPED, StepState.CANCELLED, StepState.COMPENSATED}
)
"""Upstream states nothing can undo: waiting on them would wait forever."""

FAILED_FOR_NOW: frozenset[StepState] = frozenset(
    {StepState.REJECTED, StepState.EXPIRED, StepState.FAILED}
)
"""Upstream states an override, a reopening or a retry can still turn into success."""

RESOLVED: frozenset[StepState] = SUCCEEDED | FAILED_FINALLY | FAILED_FOR_NOW
"""Upstream states that satisfy an `enhances` or `optional` dependency."""


class Outcome(StrEnum):
    """What a failed upstream does to a dependent step."""

    ASK_USER = "ask_user"
    SKIP = "skip"
    FALLBACK = "fallback"
    WAIT = "wait"
    NONE = "none"


class Readiness(StrEnum):
    """Where a waiting step stands with respect to its dependencies."""

    READY = "ready"
    WAIT = "wait"
    SKIP = "skip"
    ASK_USER = "ask_user"


@dataclass(frozen=True)
class StepReadiness:
    """A step's readiness, the upstream steps holding it and the fallback values it will use."""

    step: str
    readiness: Readiness
    waiting_on: tuple[str, ...] = ()
    fallbacks: dict[str, Any] = field(default_factory=dict)


def as_followed(dep: Dependency) -> Dependency:
    """The dependency as it is followed: a `when` branch is a hard requirement whatever effect
    the author wrote (the decision must pick it)."""
    if dep.when is None:
        return dep
    return Dependency(dep.step, DependencyEffect.BLOCKS, dep.resolution, dep.fallback, dep.when)


def failure_outcome(dep: Dependency, upstream_final: bool) -> Outcome:
    """What happens to the dependent when `dep`'s upstream did not (or will not) succeed."""
    dep = as_followed(dep)
    if dep.resolution is Resolution.SKIP:
        return Outcome.NONE if dep.effect is DependencyEffect.OPTIONAL else Outcome.SKIP
    if dep.resolution is Resolution.FALLBACK:
        return Outcome.FALLBACK
    if dep.resolution is Resolution.ASK_USER:
        return Outcome.ASK_USER
    if dep.effect is not DependencyEffect.BLOCKS:
        return Outcome.NONE  # nice-to-have data: go on without it
    return Outcome.SKIP if upstream_final else Outcome.WAIT


_VERDICT = {
    Outcome.SKIP: Readiness.SKIP,
    Outcome.ASK_USER: Readiness.ASK_USER,
    Outcome.WAIT: Readiness.WAIT,
}


def evaluate_step(
    defn: TemplateDefinition,
    states: Mapping[str, StepState],
    decision_values: Mapping[str, str],
    step_key: str,
    waived: Collection[str] = (),
) -> StepReadiness:
    """Whether one step can start, must keep waiting, should be skipped or needs a person.

    Steps missing from `states` count as waiting. The strongest verdict among the step's
    dependencies wins: skip over ask_user over wait over ready.
    """
    step = defn.step(step_key)
    if step.kind is StepKind.MERGE:
        inbound = [states.get(d.step, StepState.WAITING) for d in step.depends_on]
        open_ = [d.step for d, s in zip(step.depends_on, inbound, strict=True) if s not in RESOLVED]
        if open_:
            return StepReadiness(step_key, Readiness.WAIT, tuple(open_))
        if any(s in SUCCEEDED for s in inbound):
            return StepReadiness(step_key, Readiness.READY)
        return StepReadiness(step_key, Readiness.SKIP)
    verdicts: list[Readiness] = []
    waiting_on: list[str] = []
    fallbacks: dict[str, Any] = {}
    for dep in step.depends_on:
        upstream = states.get(dep.step, StepState.WAITING)
        if dep.step in waived:
            continue
        if upstream in SUCCEEDED:
            if dep.when is not None and decision_values.get(dep.step) != dep.when:
                verdicts.append(Readiness.SKIP)  # the branch not taken
            continue
        if upstream not in RESOLVED:
            verdicts.append(Readiness.WAIT)
            waiting_on.append(dep.step)
            continue
        outcome = failure_outcome(dep, upstream in FAILED_FINALLY)
        if outcome is Outcome.FALLBACK:
            fallbacks[dep.step] = dep.fallback
        elif outcome in _VERDICT:
            verdicts.append(_VERDICT[outcome])
            if outcome is not Outcome.SKIP:
                waiting_on.append(dep.step)
    for verdict in (Readiness.SKIP, Readiness.ASK_USER, Readiness.WAIT):
        if verdict in verdicts:
            return StepReadiness(step_key, verdict, tuple(waiting_on), fallbacks)
    return StepReadiness(step_key, Readiness.READY, (), fallbacks)


def unmet_blocking(
    defn: TemplateDefinition, states: Mapping[str, StepState], step_key: str
) -> list[str]:
    """Upstream steps that `step_key` hard-depends on and that have not succeeded.

    A dependency whose upstream failed but resolves by `fallback` is met (the fallback value
    stands in). A plan whose approved steps have unmet blocking dependencies cannot start
    executing.
    """
    unmet = []
    for dep in defn.step(step_key).depends_on:
        if as_followed(dep).effect is not DependencyEffect.BLOCKS:
            continue
        upstream = states.get(dep.step, StepState.WAITING)
        if upstream in SUCCEEDED:
            continue
        if upstream in RESOLVED and dep.resolution is Resolution.FALLBACK:
            continue
        unmet.append(dep.step)
    return unmet


def unmet_for_execution(
    defn: TemplateDefinition, states: Mapping[str, StepState], step_key: str
) -> list[str]:
    """Upstream steps that must have *run* before `step_key` may start executing.

    Approval is not enough at execution time: a step that hard-depends on another starts only
    once that one completed. An upstream that will never run but resolves by `fallback` is met
    (the fallback value stands in).
    """
    unmet = []
    for dep in defn.step(step_key).depends_on:
        if as_followed(dep).effect is not DependencyEffect.BLOCKS:
            continue
        upstream = states.get(dep.step, StepState.WAITING)
        if upstream == StepState.COMPLETED:
            continue
        if dep.when is not None and upstream in SUCCEEDED and upstream != StepState.APPROVED:
            continue
        never_runs = upstream in RESOLVED and upstream not in (
            StepState.APPROVED,
            StepState.RUNNING,
        )
        if never_runs and dep.resolution is Resolution.FALLBACK:
            continue
        unmet.append(dep.step)
    return unmet
