"""Properties of the workflow engine on a real PostgreSQL: random valid templates (chains,
parallel branches, merges, quorums over users, groups and roles, dependencies with every effect
and resolution, SLAs with every timeout action) and random sequences of actions by random
people (the requester, assignees, group members, role holders, strangers, admins, overriders,
delegates), by the executor (execution reports and recoveries) and by time (timers coming due).

After every sequence:

(a) the progression replayed purely, from a fresh submission, with the events the engine took,
    reaches exactly the step and item states the engine stored (simulation = what happens);
(b) no step is approved (nor running, completed, failed or compensated, which follow an
    approval) unless it holds `needed` votes from distinct people who are not the requester,
    or an audited override, auto-approval, timeout or merge rule;
(c) the tenant's audit chain verifies;
(d) every refused action changed nothing (checked as it happens).
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from signoff.db import audit as audit_repo
from signoff.db import sql
from signoff.domain.actors import Actor, Principal
from signoff.domain.calendar import WALL_CLOCK
from signoff.domain.errors import DomainError
from signoff.domain.events import ExecutionStatus, Recovery
from signoff.domain.intake import new_item
from signoff.domain.permissions import Grants
from signoff.domain.records import DecisionOutcome, SeatVote, Step
from signoff.domain.simulation import replay
from signoff.domain.snapshot import Context, HoldOption, Snapshot
from signoff.domain.states import ItemState, StepState
from signoff.domain.templates import plan_to_template
from signoff.services import actions, engine, execution, overrides
from signoff.services import items as item_services
from signoff.services import timers as timer_services
from signoff.services.context import ServiceContext
from signoff.services.permissions import defaults_of
from signoff.services.templates import definition_of, save_template

REQUESTER = "req"
PEOPLE: dict[str, Principal] = {}
JUSTIFICATION = "the customer is blocked and the duty manager agreed by phone"


def _person(user: str, roles: tuple[str, ...] = (), groups: tuple[str, ...] = ()) -> Principal:
    return Principal(user, "", roles=frozenset(roles), groups=frozenset(groups))


for _p in (
    _person(REQUESTER, roles=("r",)),  # the requester also holds the role a step may name
    _person("u1"),
    _person("u2"),
    _person("u3"),
    _person("gm1", groups=("g",)),
    _person("gm2", groups=("g",), roles=("r",)),
    _person("rm", roles=("r",)),
    _person("adm", roles=("admin",)),
    _person("ov", roles=("override",)),
    _person("x"),
):
    PEOPLE[_p.user_id] = _p
NAMED = [REQUESTER, "u1", "u2", "u3"]
EFFECTS = ["blocks", "enhances", "optional"]
RESOLUTIONS = ["wait", "skip", "fallback", "ask_user"]
_keys = itertools.count()


@st.composite
def templates(draw: Any) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 5))):
        key = f"s{i}"
        earlier = [s["key"] for s in steps]
        if len(earlier) >= 2 and draw(st.integers(0, 4)) == 0:
            inbound = draw(st.lists(st.sampled_from(earlier), min_size=2, max_size=3, unique=True))
            steps.append({"key": key, "kind": "merge", "depends_on": inbound})
            continue
        users = draw(st.lists(st.sampled_from(NAMED), max_size=3, unique=True))
        groups = ["g"] if draw(st.booleans()) else []
        roles = ["r"] if draw(st.integers(0, 2)) == 0 else []
        if not (users or groups or roles):
            users = ["u1"]
        counts = {"g": 2} if groups and draw(st.booleans()) else {}
        seats = len(users) + (counts.get("g", 1) if groups else 0) + len(roles)
        assignees: dict[str, Any] = {"users": users, "groups": groups, "roles": roles}
        if counts:
            assignees["seats"] = counts
        mode = draw(st.sampled_from(["any", "all", "n_of_m"]))
        quorum: dict[str, Any] = {"mode": mode}
        if mode == "n_of_m":
            quorum["n"] = draw(st.integers(1, seats))
        depends_on = []
        upstreams = (
            draw(st.lists(st.sampled_from(earlier), max_size=2, unique=True)) if earlier else []
        )
        for upstream in upstreams:
            resolution = draw(st.sampled_from(RESOLUTIONS))
            dependency = {
                "step": upstream,
                "effect": draw(st.sampled_from(EFFECTS)),
                "resolution": resolution,
            }
            if resolution == "fallback":
                dependency["fallback"] = {f"from_{upstream}": i}
            depends_on.append(dependency)
        step: dict[str, Any] = {
            "key": key,
            "assignees": assignees,
            "quorum": quorum,
            "depends_on": depends_on,
            "any_rejection_rejects": draw(st.booleans()),
            "params": {"n": i},
        }
        if draw(st.booleans()):
            step["sla"] = "PT1H"
            step["timeout_action"] = draw(st.sampled_from(["expire", "reject", "escalate"]))
            if draw(st.booleans()):
                step["escalation"] = [
                    {"after": "PT30M", "action": "add_assignees", "targets": {"users": ["u3"]}}
                ]
        steps.append(step)
    kind = draw(st.sampled_from(["approval", "incident_review", "plan"]))
    document = {"key": f"prop-{next(_keys)}", "name": "property", "kind": kind, "steps": steps}
    if kind == "plan":
        # a plan base: its first step is the prototype every plan step inherits; the plan's
        # steps keep the dependencies drawn above (merges become plain steps)
        document["steps"] = [{**steps[0], "key": "prototype", "depends_on": []}]
        document["steps"][0].pop("kind", None)
        if "assignees" not in document["steps"][0]:
            document["steps"][0].update({"assignees": {"users": ["u1", "u2"]}, "quorum": "any"})
        document["action_risks"] = {"read": "low", "write": "medium"}
        document["auto_approval"] = {"below_risk": "medium", "actions": ["read"]}
        document["plan"] = [
            {
                "key": step["key"],
                "action": draw(st.sampled_from(["read", "write", "unknown"])),
                "risk": draw(st.sampled_from([None, "low", "high"])),
                "depends_on": [
                    dep if isinstance(dep, dict) else {"step": dep}
                    for dep in step.get("depends_on", [])
                ],
            }
            for step in steps
        ]
    return document


people = st.sampled_from(sorted(PEOPLE))
#: Stands for someone who could fill an open seat of the step a move aims at.
SEATED = "@seat"
deciders = st.sampled_from(["u1", "u2", "u3", "gm1", "gm2", "rm", "u1", "u2", "u3"])
KINDS = (
    ["vote"] * 8
    + ["time"] * 2
    + [
        "hand_over",
        "delegate",
        "replace",
        "resolve",
        "resolve",
        "modify",
        "override",
        "claim",
        "resubmit",
        "cancel",
        "report",
        "report",
        "recover",
    ]
)
#: What an executor reports: mostly what fits the step's state (a run that goes well or
#: fails), sometimes any status.
REPORTS = ["goes well"] * 3 + ["fails"] * 2 + list(ExecutionStatus)
#: The report that fits a step's state, for a run that goes well and one that fails.
FITTING = {
    "goes well": {
        StepState.RUNNING: ExecutionStatus.COMPLETED,
        StepState.COMPLETED: ExecutionStatus.COMPENSATED,
    },
    "fails": {StepState.RUNNING: ExecutionStatus.FAILED},
}


@st.composite
def executions(draw: Any) -> tuple[Any, ...]:
    """An execution report or a recovery, mostly by the requester (the agent executes; a
    stranger may not)."""
    step = draw(st.integers(0, 4))
    if draw(st.integers(0, 3)) == 0:
        recovery = draw(st.sampled_from(list(Recovery)))
        return ("recover", draw(st.sampled_from([REQUESTER] * 3 + ["x"])), step, recovery)
    return (
        "report",
        draw(st.sampled_from([REQUESTER] * 4 + ["x"])),
        step,
        draw(st.sampled_from(REPORTS)),
    )


@st.composite
def moves(draw: Any) -> tuple[Any, ...]:
    """One action: mostly votes by people likely to hold a seat, some by anyone."""
    kind = draw(st.sampled_from(KINDS))
    who = draw(st.one_of(st.just(SEATED), st.just(SEATED), st.just(SEATED), deciders, people))
    step = draw(st.integers(0, 4))
    if kind == "vote":
        verdict = draw(st.sampled_from(["approve"] * 4 + ["reject", "changes"]))
        return (kind, who, step, verdict)
    if kind in ("hand_over", "delegate"):
        return (kind, who, step, draw(people))
    if kind == "replace":
        return (
            kind,
            draw(st.sampled_from(["adm", REQUESTER, "u1"])),
            step,
            draw(st.lists(st.sampled_from(NAMED), max_size=3)),
        )
    if kind == "resolve":
        return (
            kind,
            draw(st.sampled_from([REQUESTER, REQUESTER, "adm", "u1"])),
            step,
            draw(st.sampled_from(list(HoldOption))),
        )
    if kind == "time":
        return (kind, draw(st.sampled_from([20, 40, 70])))
    if kind == "resubmit":
        return (kind, draw(st.sampled_from([REQUESTER, REQUESTER, "adm", "x"])))
    if kind == "cancel":  # rarely done, so that most sequences play out
        return (kind, draw(st.sampled_from([REQUESTER, "adm", "x", "x"])))
    if kind == "override":
        return (kind, draw(st.sampled_from(["ov", "adm", REQUESTER, "x"])), step)
    if kind in ("report", "recover"):
        return draw(executions())
    return (kind, who, step)


class Recorder:
    """Keeps the events the engine took in transactions that committed."""

    def __init__(self, monkeypatch: Any) -> None:
        self.pending: list[tuple[Any, Any]] = []
        self.events: list[tuple[Any, Any]] = []
        real = engine.progress

        def recording(snapshot: Snapshot, definition: Any, event: Any, context: Context) -> Any:
            result = real(snapshot, definition, event, context)
            self.pending.append((context.now, event))
            return result

        for module in (engine, item_services, timer_services):
            monkeypatch.setattr(module, "progress", recording)

    async def run(self, call: Awaitable[Any]) -> Any:
        self.pending = []
        try:
            result = await call
        except BaseException:
            self.pending = []
            raise
        self.events += self.pending
        return result


async def fingerprint(tenant: str, item_id: uuid.UUID) -> tuple[Any, ...]:
    item = await sql.fetchrow("SELECT state, version FROM workflow_item WHERE id = $1", item_id)
    steps = await sql.fetch(
        "SELECT state, version, seats::text, claimed_by FROM step WHERE item_id = $1 "
        "ORDER BY position",
        item_id,
    )
    events = await sql.fetchrow(
        "SELECT count(*) AS n FROM audit_event WHERE tenant_id = $1", tenant
    )
    decisions = await sql.fetchrow("SELECT count(*) AS n FROM decision WHERE item_id = $1", item_id)
    timers = await sql.fetchrow(
        "SELECT count(*) AS n FROM timer WHERE item_id = $1 AND status = 'armed'", item_id
    )
    assert item and events and decisions and timers
    return (tuple(item), [tuple(s) for s in steps], events["n"], decisions["n"], timers["n"])


def _seated(step: Step, pick: int) -> str | None:
    """Someone who could fill an open seat of `step` (its holder, delegate, a member of its
    group or a holder of its role; the requester too, who must then be refused)."""
    candidates: list[str] = []
    for seat in (seat for seat in step.seats if not seat.filled):
        candidates += [name for name in (seat.holder, seat.delegate) if name in PEOPLE]
        candidates += [
            p.user_id
            for p in PEOPLE.values()
            if (seat.group and seat.group in p.groups) or (seat.role and seat.role in p.roles)
        ]
    return candidates[pick % len(candidates)] if candidates else None


#: The steps an action is mostly aimed at: those where it can happen.
AIMED = {
    "vote": (StepState.ACTIVE,),
    "resolve": (StepState.HELD,),
    "report": (StepState.APPROVED, StepState.RUNNING, StepState.COMPLETED),
    "recover": (StepState.FAILED,),
}


#: Item states in which execution reports and recoveries can happen.
EXECUTABLE = (ItemState.APPROVED, ItemState.EXECUTING, ItemState.FAILED, ItemState.COMPENSATING)


def _effective(move: tuple[Any, ...], view: engine.ItemView) -> tuple[Any, ...]:
    """The move to make: an execution move before there is anything to execute helps the
    review along instead (an approval by someone seated), so that executions do happen."""
    if move[0] in ("report", "recover") and view.state not in EXECUTABLE:
        return ("vote", SEATED, move[2], "approve")
    return move


def _call(
    move: tuple[Any, ...], view: engine.ItemView, ctx: ServiceContext, tenant: str
) -> Callable[[], Awaitable[Any]] | None:
    kind, *args = move
    # mostly aim at a step where the action can happen (an open one, a held one), sometimes not
    aimed = AIMED.get(kind, (StepState.ACTIVE,))
    targets = [s for s in view.steps if s.state in aimed] or list(view.steps)
    pool = list(view.steps) if len(args) > 1 and args[1] == 4 else targets
    record = pool[args[1] % len(pool)] if len(args) > 1 and kind != "time" else None
    step = record.id if record else None
    name = args[0] if args and isinstance(args[0], str) else None
    if name == SEATED:
        name = _seated(record, args[1]) if record else None
    person = PEOPLE.get(name) if name else None
    who = Actor(Principal(person.user_id, tenant, person.roles, person.groups)) if person else None
    g = actions.Guards()
    if kind == "vote" and who and step:
        outcome = {"approve": item_services.Outcome.APPROVE, "reject": item_services.Outcome.REJECT,
                   "changes": item_services.Outcome.REQUEST_CHANGES}[args[2]]  # fmt: skip
        inp = item_services.DecideStepInput(step, outcome, reason="because")
        return lambda: item_services.decide_step(who, ctx, inp)
    if kind in ("hand_over", "delegate") and who and step:
        to = args[2]
        inp = (
            actions.ReassignInput(step, users=(to,), reason="away")
            if kind == "hand_over"
            else actions.ReassignInput(step, delegate_to=to, reason="away")
        )
        return lambda: actions.reassign_step(who, ctx, inp)
    if kind == "replace" and who and step:
        inp = actions.ReassignInput(step, users=tuple(args[2]), reason="new people")
        return lambda: actions.reassign_step(who, ctx, inp)
    if kind == "resolve" and who and step:
        value = {"given": "by hand"} if args[2] is HoldOption.PROVIDE else None
        inp = actions.ResolveHeldInput(step, args[2], "decided", value)
        return lambda: actions.resolve_held_step(who, ctx, inp)
    if kind == "modify" and who and step:
        inp = actions.ModifyParamsInput(step, {"changed": True}, "adjusted")
        return lambda: actions.modify_step_params(who, ctx, inp)
    if kind == "override" and who and step:
        return lambda: overrides.override_step(
            who, ctx, overrides.OverrideInput(step, JUSTIFICATION)
        )
    if kind == "report" and who and record:
        status = args[2]
        if status in FITTING:
            status = FITTING[status].get(record.state, ExecutionStatus.RUNNING)
        error = "the service answered 503" if status is ExecutionStatus.FAILED else None
        result = {"done": True} if status is ExecutionStatus.COMPLETED else None
        report = execution.ReportInput(record.id, status, result, error)
        return lambda: execution.report_execution(who, ctx, report)
    if kind == "recover" and who and step:
        return lambda: execution.recover_step(who, ctx, step, args[2], "the cause is fixed", g)
    if kind == "claim" and who and step:
        return lambda: actions.claim_step(who, ctx, step, g)
    if kind == "resubmit" and who:
        return lambda: actions.resubmit_item(who, ctx, actions.ResubmitInput(view.id, reason="v2"))
    if kind == "cancel" and who:
        return lambda: actions.cancel_item(who, ctx, view.id, "not needed", g)
    return None


async def fire_due(recorder: Recorder, ctx: ServiceContext, item_id: uuid.UUID) -> None:
    rows = await sql.fetch(
        """SELECT id, token FROM timer WHERE item_id = $1 AND status = 'armed' AND due_at <= $2
        ORDER BY due_at, kind""",
        item_id,
        ctx.clock.now(),
    )
    for row in rows:
        await recorder.run(timer_services.fire_timer(ctx, row["id"], row["token"]))


#: Step states reached only through an approval (execution follows it).
WERE_APPROVED = ("approved", "running", "completed", "failed", "compensated")


async def check_votes(item_id: uuid.UUID) -> None:
    """(b): an approved step holds `needed` votes of distinct people other than the requester,
    each a stored decision, or an audited rule or override approved it."""
    steps = await sql.fetch("SELECT * FROM step WHERE item_id = $1", item_id)
    decisions = await sql.fetch("SELECT * FROM decision WHERE item_id = $1", item_id)
    audit = await sql.fetch(
        "SELECT action, step_id, data::text AS data FROM audit_event WHERE item_id = $1", item_id
    )
    for step in (engine_step for engine_step in steps if engine_step["state"] in WERE_APPROVED):
        own = [d for d in decisions if d["step_id"] == step["id"]]
        if any(d["outcome"] in (DecisionOutcome.OVERRIDE, DecisionOutcome.APPROVE_BY_POLICY) and
               (d["rule"] or d["outcome"] == DecisionOutcome.OVERRIDE) for d in own):  # fmt: skip
            assert any(
                a["step_id"] == step["id"] and a["action"] in ("step.override", "step.approve")
                for a in audit
            ), "a rule or an override approved a step without an audit event"
            continue
        seats = json.loads(step["seats"]) if isinstance(step["seats"], str) else step["seats"]
        yes = [s for s in seats if s.get("vote") == SeatVote.APPROVE]
        assert len(yes) >= step["needed"], f"step {step['key']} approved short of its quorum"
        voters = [s["filled_by"] for s in yes]
        people = {p for s in yes for p in (s["filled_by"], s.get("acting_for")) if p}
        assert len(set(voters)) == len(voters), "one person filled two seats"
        assert REQUESTER not in people, "the requester decided their own item"
        for seat in yes:
            assert any(
                d["actor_id"] == seat["filled_by"] and d["outcome"] == "approve" for d in own
            ), "a filled seat without its decision"


def _comparable(snapshot: Snapshot) -> Any:
    steps = {
        s.key: (
            s.state,
            s.needed,
            tuple(tuple(sorted(seat.to_dict().items())) for seat in s.seats),
            dict(s.params),
            s.waived,
            s.decision_value,
            s.hold.upstreams if s.hold else None,
            s.assignees.to_dict(),
        )
        for s in snapshot.steps
    }
    item = snapshot.item
    return (item.state, item.revision, item.priority, dict(item.payload), steps)


@pytest.mark.timeout(600)
@hsettings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    document=templates(),
    sequence=st.lists(moves(), min_size=3, max_size=24),
    execution=st.lists(executions(), max_size=8),
)
async def test_the_engine_does_what_the_progression_predicts_and_keeps_the_rules(
    services, tenant, clock, monkeypatch, document, sequence, execution
):
    admin = Actor(Principal("adm", tenant, frozenset({"admin"})))
    plan = document.pop("plan", None)
    version = await save_template(admin, services, document, publish=True)
    definition = definition_of(version, services.settings)
    if plan is not None:
        plan = {"steps": [{k: v for k, v in p.items() if v is not None} for p in plan]}
        definition = plan_to_template(plan, definition)
    recorder = Recorder(monkeypatch)
    first_seq = (await audit_repo.chain_head(tenant))[0] + 1
    requester = Actor(Principal(REQUESTER, tenant, PEOPLE[REQUESTER].roles))
    created = clock.now()
    view = await recorder.run(
        item_services.submit_item(
            requester,
            services,
            item_services.SubmitItemInput(
                template_key=document["key"], title="property", plan=plan
            ),
        )
    )
    for move in [*sequence, *execution]:  # reviewing, then mostly executing
        if move[0] == "time":
            clock.advance(timedelta(minutes=move[1]))
            await fire_due(recorder, services, view.id)
            continue
        view = await engine.load_view(admin, services, view.id)
        move = _effective(move, view)
        call = _call(move, view, services, tenant)
        if call is None:
            continue
        before = await fingerprint(tenant, view.id)
        try:
            await recorder.run(call())
            event(f"done {move[0]}")
        except DomainError as refusal:
            event(f"refused {move[0]}: {refusal.code.value}")
            # (d) a refused action changed nothing
            assert await fingerprint(tenant, view.id) == before, f"refused {move} changed it"
    stored = await engine.load_view(admin, services, view.id)
    event(f"item {stored.state.value}")
    event(f"{len(recorder.events)} events taken")
    for s_ in stored.steps:
        event(f"a step ends {s_.state.value}")

    # (a) the progression, replayed purely from a fresh submission, reaches what is stored
    fresh = new_item(
        definition,
        tenant_id=tenant,
        template_id=version.id,
        requester_id=REQUESTER,
        title="property",
        payload={},
        now=created,
        plan=stored.item.plan,
    )
    context = Context(
        created,
        WALL_CLOCK,
        grants=Grants(defaults_of(services.settings)),
        override_min_justification=services.settings.override_min_justification,
    )
    predicted = replay(definition, fresh, recorder.events[1:], context)
    assert _comparable(predicted) == _comparable(stored.snapshot)

    # (b) votes, (c) the audit chain
    await check_votes(view.id)
    assert await audit_repo.verify_chain(tenant, first_seq) is None
    if stored.state is ItemState.APPROVED:
        open_states = (StepState.WAITING, StepState.HELD, StepState.ACTIVE)
        assert not [s.key for s in stored.steps if s.state in open_states]
