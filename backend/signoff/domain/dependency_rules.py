"""The progression's rules for what depends on what during review: a modified step's
dependents, and the choices on a step held for a person (seed 003 dependency conflicts)."""

from __future__ import annotations

from dataclasses import replace

from signoff.domain.dependencies import (
    FAILED_FOR_NOW,
    RESOLVED,
    SUCCEEDED,
    Outcome,
    failure_outcome,
)
from signoff.domain.errors import DomainError, ErrorCode, invalid
from signoff.domain.events import Modify, ResolveHold
from signoff.domain.permissions import Permission
from signoff.domain.review_rules import cancel_item, may_act, reason_for
from signoff.domain.run import Run, with_values
from signoff.domain.seats import assignees_of, cleared
from signoff.domain.snapshot import HoldOption
from signoff.domain.states import STEP_MACHINE, StepAction, StepState


def modify(run: Run, event: Modify) -> None:
    """A reviewer changes what a step will do before it is decided (the originals are kept);
    the steps that depend on it follow their resolution (seed 003, "draft editing")."""
    step = run.steps[event.step]
    STEP_MACHINE.next_state(step.state, StepAction.MODIFY)
    may_act(run, step, event.by)
    reason = reason_for(event.reason, "to modify a step")
    run.move(
        event.step,
        StepAction.MODIFY,
        reason=reason,
        data={"before": dict(step.params), "after": dict(event.params)},
        params=dict(event.params),
        original_params=step.original_params if step.original_params is not None else step.params,
    )
    modified_downstream(run, event.step)
    run.advance()


def modified_downstream(run: Run, key: str) -> None:
    """What a modification of `key` does to the steps waiting on it: a `fallback` dependent
    stops relying on it and takes its fallback value, `skip` drops the dependent, `ask_user`
    holds it for a person; a `wait` dependent waits for the step to be decided."""
    for dependent in run.defn.dependents(key):
        current = run.steps[dependent.key]
        if current.state is not StepState.WAITING:
            continue
        dep = next(d for d in dependent.depends_on if d.step == key)
        outcome = failure_outcome(dep, upstream_final=False)
        if outcome is Outcome.FALLBACK:
            run.change(
                dependent.key,
                waived=(*current.waived, key),
                params=with_values(current.params, {key: dep.fallback}),
                original_params=current.original_params or current.params,
            )
            run.note(
                "step.fallback",
                dependent.key,
                data={"upstream": key, "by": "modification", "fallback": dep.fallback},
            )
        elif outcome is Outcome.SKIP:
            run.move(dependent.key, StepAction.SKIP, data={"by": "modification", "upstream": key})
        elif outcome is Outcome.ASK_USER:
            run.hold(dependent.key, (key,))


def resolve_hold(run: Run, event: ResolveHold) -> None:
    """The requester (or an admin) decides a held step: retry (its rejected or expired upstream
    steps are reviewed again; a modified one is waited for), skip it, give by hand the value
    the upstream would have provided, or cancel the item."""
    key = event.step
    step = run.steps[key]
    if step.state is not StepState.HELD or step.hold is None:
        raise DomainError(
            ErrorCode.ILLEGAL_TRANSITION, f"step {key!r} is not held for a decision", "stepId"
        )
    if run.requester != event.by.user_id:
        run.require(event.by, Permission.MANAGE_ITEMS, "resolving a held step of someone else's")
    reason = reason_for(event.reason, "to resolve a held step")
    upstreams = step.hold.upstreams
    data = {"option": event.option.value, "upstreams": list(upstreams)}
    if event.option is HoldOption.CANCEL:
        cancel_item(run, reason)
        return
    if event.option is HoldOption.SKIP:
        run.move(key, StepAction.SKIP, reason=reason, data={**data, "by": "requester"}, hold=None)
    elif event.option is HoldOption.RETRY:
        reopened = False
        for upstream in upstreams:
            current = run.steps[upstream]
            if current.state not in FAILED_FOR_NOW - {StepState.FAILED}:
                if current.state in RESOLVED and current.state not in SUCCEEDED:
                    raise DomainError(
                        ErrorCode.ILLEGAL_TRANSITION,
                        f"step {upstream!r} is {current.state.value}: it cannot run again",
                        "option",
                    )
                continue  # still under review (it was modified): wait for it
            seats = cleared(current.seats)
            if not reopened:
                # votes of a new round are a new revision (one vote per person and revision)
                run.item = replace(run.item, revision=run.item.revision + 1)
                reopened = True
            run.move(
                upstream,
                StepAction.REOPEN,
                reason=reason,
                data={"by": "requester", "for": key},
                seats=seats,
                assignees=assignees_of(seats),
            )
        run.move(key, StepAction.RELEASE, reason=reason, data=data, hold=None)
    else:
        if not event.value:
            raise invalid("give the value the upstream steps would have provided", "value")
        run.move(
            key,
            StepAction.RELEASE,
            reason=reason,
            data={**data, "value": dict(event.value)},
            hold=None,
            waived=(*step.waived, *upstreams),
            params={**step.params, **event.value},
            original_params=step.original_params or step.params,
        )
    run.advance()
