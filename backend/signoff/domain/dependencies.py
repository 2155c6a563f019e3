"""Dependency resolution between steps (seed 003): what is ready, what is skipped, what a
rejection or a modification does downstream.

Vocabulary. An upstream step has *succeeded* when approved, running or completed. It has
*failed finally* when skipped, cancelled or compensated: nothing can bring it back, so waiting
for it is pointless. It has *failed for now* when rejected, expired or failed: an override or a
retry can still turn it around, so `wait` keeps waiting. Per dependency, when the upstream does
not succeed:

| resolution | blocks                         | enhances / optional                  |
| ---------- | ------------------------------ | ------------------------------------ |
| wait       | wait (skip if failed finally)  | proceed without the upstream         |
| skip       | skip the dependent step        | skip the dependent step              |
| fallback   | proceed with the fallback value| proceed with the fallback value      |
| ask_user   | hold until a person decides    | hold until a person decides          |

`blocks` needs its upstream to succeed; `enhances` and `optional` only need it resolved in any
terminal way. A `when` branch is taken only if the decision step chose that value, and a
branch not taken is skipped. A merge step waits for every inbound step to resolve and proceeds
if at least one of them succeeded.
"""

from __future__ import annotations

from collections.abc import Mapping
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
"""Upstream states an override or a retry can still turn into success."""

RESOLVED: frozenset[StepState] = SUCCEEDED | FAILED_FINALLY | FAILED_FOR_NOW
"""Upstream states that satisfy an `enhances` or `optional` dependency."""


class Outcome(StrEnum):
    """What happens to a dependent step."""

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
class Impact:
    """The effect of a change to `via` on the dependent `step`."""

    step: str
    effect: DependencyEffect
    resolution: Resolution
    outcome: Outcome
    fallback: Any = None
    via: str = ""


@dataclass(frozen=True)
class StepReadiness:
    """A step's readiness, the upstream steps holding it and the fallback values it will use."""

    step: str
    readiness: Readiness
    waiting_on: tuple[str, ...] = ()
    fallbacks: dict[str, Any] = field(default_factory=dict)


def _failure_outcome(dep: Dependency, upstream_final: bool) -> Outcome:
    """The outcome for the dependent when `dep`'s upstream did not (or will not) succeed."""
    if dep.resolution is Resolution.SKIP:
        return Outcome.SKIP
    if dep.resolution is Resolution.FALLBACK:
        return Outcome.FALLBACK
    if dep.resolution is Resolution.ASK_USER:
        return Outcome.ASK_USER
    if dep.effect is not DependencyEffect.BLOCKS:
        return Outcome.NONE  # nice-to-have data: go on without it
    return Outcome.SKIP if upstream_final else Outcome.WAIT


def impact_of_rejection(defn: TemplateDefinition, step_key: str) -> list[Impact]:
    """What rejecting `step_key` does downstream, transitively.

    A dependent that will not run as planned (skipped, held for a person, or blocked waiting)
    passes the failure on to its own dependents; one that proceeds (fallback, or `none` for a
    nice-to-have dependency) stops the chain there. Since only hard (`blocks`) edges produce a
    `wait`, and `skip`/`ask_user` are explicit choices, the chain in practice follows `blocks`
    edges plus whatever the author asked to skip. Impacts come in topological order, one per
    affected (step, upstream) edge.
    """
    defn.step(step_key)
    return _propagate(defn, {step_key}, modified=None)


def impact_of_modification(defn: TemplateDefinition, step_key: str) -> list[Impact]:
    """What changing the params of `step_key` does downstream (seed 003, "draft editing").

    The modified step still runs, but with different data: a `fallback` dependent switches to its
    fallback value, `ask_user` asks the person again, `skip` drops the dependent, and a blocking
    `wait` dependent must wait for the modified step to be approved again. Non-blocking `wait`
    dependents take whatever comes (`none`). Skips and holds travel down `blocks` chains as for a
    rejection.
    """
    defn.step(step_key)
    return _propagate(defn, set(), modified=step_key)


def _propagate(defn: TemplateDefinition, failed: set[str], modified: str | None) -> list[Impact]:
    impacts: list[Impact] = []
    failing = set(failed)  # steps that will not run as planned
    for key in defn.topological_order():
        step = defn.step(key)
        carries = False
        for dep in step.depends_on:
            if dep.step == modified or dep.step in failing:
                outcome = _failure_outcome(dep, upstream_final=False)
            else:
                continue
            fallback = dep.fallback if outcome is Outcome.FALLBACK else None
            impacts.append(Impact(key, dep.effect, dep.resolution, outcome, fallback, dep.step))
            if outcome in (Outcome.SKIP, Outcome.ASK_USER, Outcome.WAIT):
                carries = True
        if carries and step.kind is not StepKind.MERGE:
            failing.add(key)
    return impacts


def evaluate_step(
    defn: TemplateDefinition,
    states: Mapping[str, StepState],
    decision_values: Mapping[str, str],
    step_key: str,
) -> StepReadiness:
    """Whether one step can start, must keep waiting, should be skipped or needs a person.

    Steps missing from `states` count as waiting. The strongest verdict among the step's
    dependencies wins: skip over ask_user over wait over ready.
    """
    step = defn.step(step_key)
    verdicts: list[Readiness] = []
    waiting_on: list[str] = []
    fallbacks: dict[str, Any] = {}
    if step.kind is StepKind.MERGE:
        inbound = [states.get(d.step, StepState.WAITING) for d in step.depends_on]
        open_ = [d.step for d, s in zip(step.depends_on, inbound, strict=True) if s not in RESOLVED]
        if open_:
            return StepReadiness(step_key, Readiness.WAIT, tuple(open_))
        if any(s in SUCCEEDED for s in inbound):
            return StepReadiness(step_key, Readiness.READY)
        return StepReadiness(step_key, Readiness.SKIP)
    for dep in step.depends_on:
        upstream = states.get(dep.step, StepState.WAITING)
        if dep.when is not None and upstream in SUCCEEDED:
            if decision_values.get(dep.step) != dep.when:
                verdicts.append(Readiness.SKIP)  # the branch not taken
            continue
        if dep.when is None and upstream in SUCCEEDED:
            continue
        if upstream not in RESOLVED:
            verdicts.append(Readiness.WAIT)
            waiting_on.append(dep.step)
            continue
        outcome = _failure_outcome(
            dep if dep.when is None else _as_blocking(dep), upstream in FAILED_FINALLY
        )
        if outcome is Outcome.SKIP:
            verdicts.append(Readiness.SKIP)
        elif outcome is Outcome.ASK_USER:
            verdicts.append(Readiness.ASK_USER)
            waiting_on.append(dep.step)
        elif outcome is Outcome.WAIT:
            verdicts.append(Readiness.WAIT)
            waiting_on.append(dep.step)
        elif outcome is Outcome.FALLBACK:
            fallbacks[dep.step] = dep.fallback
    for verdict in (Readiness.SKIP, Readiness.ASK_USER, Readiness.WAIT):
        if verdict in verdicts:
            return StepReadiness(step_key, verdict, tuple(waiting_on), fallbacks)
    return StepReadiness(step_key, Readiness.READY, (), fallbacks)


def _as_blocking(dep: Dependency) -> Dependency:
    # a branch is a hard requirement whatever effect the author wrote: the decision must pick it
    return Dependency(dep.step, DependencyEffect.BLOCKS, dep.resolution, dep.fallback, dep.when)


def _waiting(defn: TemplateDefinition, states: Mapping[str, StepState]) -> list[str]:
    return [
        k for k in defn.topological_order() if states.get(k, StepState.WAITING) is StepState.WAITING
    ]


def ready_steps(
    defn: TemplateDefinition,
    states: Mapping[str, StepState],
    decision_values: Mapping[str, str],
) -> list[str]:
    """Waiting steps whose dependencies are satisfied, in topological order: activate these."""
    return [
        k
        for k in _waiting(defn, states)
        if evaluate_step(defn, states, decision_values, k).readiness is Readiness.READY
    ]


def steps_to_skip(
    defn: TemplateDefinition,
    states: Mapping[str, StepState],
    decision_values: Mapping[str, str],
) -> list[str]:
    """Waiting steps that will never run: branches not taken, `skip` resolutions, dead merges.

    Skipping one step can make its dependents skippable in turn; call again after applying the
    skips (or use `settle`) to reach the fixed point.
    """
    return [
        k
        for k in _waiting(defn, states)
        if evaluate_step(defn, states, decision_values, k).readiness is Readiness.SKIP
    ]


def steps_needing_user(
    defn: TemplateDefinition,
    states: Mapping[str, StepState],
    decision_values: Mapping[str, str],
) -> list[str]:
    """Waiting steps held by an `ask_user` resolution: a person must choose what happens."""
    return [
        k
        for k in _waiting(defn, states)
        if evaluate_step(defn, states, decision_values, k).readiness is Readiness.ASK_USER
    ]


def settle(
    defn: TemplateDefinition,
    states: Mapping[str, StepState],
    decision_values: Mapping[str, str],
) -> dict[str, StepState]:
    """`states` with every skippable step skipped, repeated until nothing more changes."""
    current = {k: states.get(k, StepState.WAITING) for k in defn.topological_order()}
    while True:
        skips = steps_to_skip(defn, current, decision_values)
        if not skips:
            return current
        for key in skips:
            current[key] = StepState.SKIPPED


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
        if dep.effect is not DependencyEffect.BLOCKS and dep.when is None:
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
        if dep.effect is not DependencyEffect.BLOCKS and dep.when is None:
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
