"""The fan-out plans the `inboxChanged` streams of one cohort together
(`InboxStream.judge_cohort`: an event judged once for every member it does not name, one slot per
event and kind for all of them). What each stream is planned to get, in order, and what it then
remembers, is exactly what its own `changes` gives it with every judgement made for that caller
alone (`BatchState._judge`, nothing shared); and streams of one selection, operation frames and
judgement class share one slot per message. Property-based over the subscribers (users named by
the events or not, roles, groups, operation ids, starting cursors) and over how the events fall
into batches, against the rows of a small world (user- and role-named steps, decisions, a
delegation, a reassignment, a claim, a hidden payload field)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from types import SimpleNamespace
from typing import Any

from graphql import OperationDefinitionNode, parse
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from signoff.api.live_fanout import REMEMBERED_ITEMS, InboxStream, plan_writes
from signoff.api.live_types import BatchState
from signoff.api.push import PushTarget
from signoff.db import audit as audit_repo
from signoff.domain.actors import Actor, Principal
from signoff.realtime.changes import ChangeKind
from signoff.realtime.hub import FeedBatch
from signoff.services import redaction as redaction_services
from tests.conftest import actor
from tests.realtime.conftest import INBOX, PAYLOADS, resubmit_after_changes, submit
from tests.realtime.test_judgement_sharing import USERS, small_world

_OPERATION = parse(INBOX).definitions[0]
assert isinstance(_OPERATION, OperationDefinitionNode)
ROLE_SETS = [(), ("change-approver",), ("change-approver", "auditor"), ("ciso",)]
GROUP_SETS = [(), ("change-managers",), ("engineering",)]

_worlds: dict[str, list[dict[str, Any]]] = {}


async def _world(services: Any, tenant: str) -> list[dict[str, Any]]:
    """The world's events (made once per test: hypothesis' examples share the fixtures)."""
    if tenant not in _worlds:
        await redaction_services.set_rule(
            actor(tenant, "ada", "admin"),
            services,
            redaction_services.SetRuleInput(
                path="rollback_plan", visible_to=("auditor",), template_key="change-approval"
            ),
        )
        await small_world(services, tenant)
        # changes requested and resubmitted: the step assigns its role again, ENTERED for a
        # member who starts after its first activation, UPDATED for one who saw it
        view = await submit(services, tenant, "change-approval", "again")
        payload = {**PAYLOADS["change-approval"], "system": "ledger"}
        await resubmit_after_changes(services, tenant, view, payload)
        _worlds[tenant] = list(await audit_repo.events_after(tenant, 0, 1000))
    return _worlds[tenant]


async def _never_sent(_message: Any) -> None:
    raise AssertionError("nothing is written here")


def _stream(principal: Principal, start: int, operation_id: str) -> InboxStream:
    # what a stream reads of its operation's executor: the operation, its variables, context
    executor = SimpleNamespace(
        operation=_OPERATION,
        fragment_definitions={},
        variable_values=SimpleNamespace(coerced={}),
        context_value=None,
    )
    target = PushTarget(
        _never_sent, operation_id, None, executor, asyncio.get_running_loop().create_future()
    )
    return InboxStream(Actor(principal), start, target, 1000)


async def _state(events: list[dict[str, Any]], tenant: str, services: Any) -> Any:
    batch = FeedBatch(events)
    state = await BatchState.of(batch, tenant, services)
    await state.prepare_redaction()
    return batch, state


CLASSES = st.lists(
    st.tuples(st.sampled_from(ROLE_SETS), st.sampled_from(GROUP_SETS), st.sampled_from("12")),
    min_size=1,
    max_size=3,
)


@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
async def test_a_cohort_is_planned_what_each_member_would_be_alone(
    services: Any, tenant: str, demo_templates: Any, data: Any
) -> None:
    events = await _world(services, tenant)
    classes = data.draw(CLASSES, label="classes")
    members = data.draw(
        st.lists(
            st.tuples(
                st.sampled_from([*USERS, "zoe"]),  # zoe: named by no event
                st.integers(0, len(classes) - 1),
                st.integers(0, len(events)),
            ),
            min_size=2,
            max_size=12,
        ),
        label="members (user, class, events already seen)",
    )
    # (the first two share a class: a cohort of at least two)
    members[1] = (members[1][0], members[0][1], members[1][2])
    cuts = sorted(data.draw(st.sets(st.integers(1, len(events) - 1), max_size=4), label="cuts"))
    together, alone = [], []
    for user, index, seen in members:
        roles, groups, operation_id = classes[index]
        principal = Principal(user, tenant, frozenset(roles), frozenset(groups))
        start = events[seen - 1]["seq"] if seen else 0
        together.append(_stream(principal, start, operation_id))
        alone.append(_stream(principal, start, operation_id))
    assert len({s.cohort for s in together}) < len(together)  # some share a cohort

    for chunk in (events[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True)):
        batch, state = await _state(chunk, tenant, services)
        plan = plan_writes(batch, state, together)
        planned = {id(stream): slots for stream, slots in plan.writes}
        batch_alone, state_alone = await _state(chunk, tenant, services)
        state_alone.judge = state_alone._judge  # every judgement the caller's own
        for mine, reference in zip(together, alone, strict=True):
            slots = planned.get(id(mine), [])
            assert [s.key for s in slots] == reference.changes(batch_alone, state_alone)
            assert (mine.cursor, list(mine.last.items())) == (
                reference.cursor,
                list(reference.last.items()),
            )
            # one slot per message text, whoever of the class it is planned for
            for slot in slots:
                index = (slot.key, mine.selection, mine.frames, mine.judgement_class())
                assert plan.slots[index] is slot
                maker = slot.stream
                assert (maker.selection, maker.frames, maker.judgement_class()) == index[1:]


def _remembered_kind(
    last: OrderedDict[Any, ChangeKind], item: Any, kind: ChangeKind
) -> ChangeKind | None:
    """The rule of docs/realtime.md ("`inboxChanged` kinds and reasons"), as a model."""
    previous = last.get(item)
    if kind == ChangeKind.LEFT and previous == ChangeKind.LEFT:
        return None
    if kind == ChangeKind.ENTERED and previous in (ChangeKind.ENTERED, ChangeKind.UPDATED):
        kind = ChangeKind.UPDATED
    last[item] = kind
    last.move_to_end(item)
    if len(last) > REMEMBERED_ITEMS:
        last.popitem(last=False)
    return kind


@hsettings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, REMEMBERED_ITEMS + 8), st.sampled_from(list(ChangeKind))),
        max_size=200,
    )
)
async def test_a_stream_remembers_the_kinds_of_its_most_recent_items(
    changes: list[tuple[int, ChangeKind]],
) -> None:
    stream = _stream(Principal("zoe", "t"), 0, "1")
    model: OrderedDict[Any, ChangeKind] = OrderedDict()
    for item, kind in changes:
        assert stream.kind_to_send(item, kind) == _remembered_kind(model, item, kind)
        assert list(stream.last.items()) == list(model.items())
