import pytest

from signoff.domain.dependencies import (
    Impact,
    Outcome,
    Readiness,
    evaluate_step,
    impact_of_modification,
    impact_of_rejection,
    ready_steps,
    settle,
    steps_needing_user,
    steps_to_skip,
    unmet_blocking,
)
from signoff.domain.errors import DomainError
from signoff.domain.states import StepState as S
from signoff.domain.templates import DependencyEffect, Resolution, parse_template


def build(*steps):
    return parse_template(
        {
            "key": "t",
            "name": "t",
            "kind": "plan",
            "steps": [{"assignees": {"users": ["u"]}, **s} for s in steps],
        }
    )


def dep(step, effect="blocks", resolution="wait", **kw):
    return {"step": step, "effect": effect, "resolution": resolution, **kw}


# seed 003: contact lookup -> email (blocks/ask_user) -> calendar; task enhances/fallback
SEED = build(
    {"key": "lookup"},
    {"key": "email", "depends_on": [dep("lookup", resolution="ask_user")]},
    {"key": "invite", "depends_on": [dep("email", resolution="skip")]},
    {"key": "task", "depends_on": [dep("email", "enhances", "fallback", fallback="Follow up")]},
    {"key": "note", "depends_on": [dep("lookup", "optional", "skip")]},
)


@pytest.mark.parametrize(
    ("effect", "resolution", "outcome"),
    [
        ("blocks", "wait", Outcome.WAIT),
        ("blocks", "skip", Outcome.SKIP),
        ("blocks", "fallback", Outcome.FALLBACK),
        ("blocks", "ask_user", Outcome.ASK_USER),
        ("enhances", "wait", Outcome.NONE),
        ("enhances", "skip", Outcome.SKIP),
        ("enhances", "fallback", Outcome.FALLBACK),
        ("enhances", "ask_user", Outcome.ASK_USER),
        ("optional", "wait", Outcome.NONE),
        ("optional", "skip", Outcome.SKIP),
        ("optional", "fallback", Outcome.FALLBACK),
        ("optional", "ask_user", Outcome.ASK_USER),
    ],
)
def test_rejection_impact_per_effect_and_resolution(effect, resolution, outcome):
    fb = {"fallback": 42} if resolution == "fallback" else {}
    defn = build({"key": "a"}, {"key": "b", "depends_on": [dep("a", effect, resolution, **fb)]})
    impacts = impact_of_rejection(defn, "a")
    assert impacts == [
        Impact(
            "b",
            DependencyEffect(effect),
            Resolution(resolution),
            outcome,
            42 if resolution == "fallback" else None,
            "a",
        )
    ]


def test_rejection_impact_is_transitive_through_blocks():
    impacts = impact_of_rejection(SEED, "lookup")
    assert [(i.step, i.outcome, i.via) for i in impacts] == [
        ("email", Outcome.ASK_USER, "lookup"),
        ("invite", Outcome.SKIP, "email"),
        ("task", Outcome.FALLBACK, "email"),
        ("note", Outcome.SKIP, "lookup"),
    ]
    assert impacts[2].fallback == "Follow up"
    assert SEED.topological_order() == ["lookup", "email", "invite", "task", "note"]


def test_transitive_chain_stops_at_fallback_and_continues_through_skips():
    defn = build(
        {"key": "a"},
        {"key": "b", "depends_on": [dep("a", resolution="fallback", fallback="x")]},
        {"key": "c", "depends_on": [dep("b")]},
        {"key": "d", "depends_on": [dep("a", resolution="skip")]},
        {"key": "e", "depends_on": [dep("d", "optional", "skip")]},
    )
    impacts = impact_of_rejection(defn, "a")
    assert [(i.step, i.outcome) for i in impacts] == [
        ("b", Outcome.FALLBACK),
        ("d", Outcome.SKIP),
        ("e", Outcome.SKIP),
    ]


def test_soft_dependents_of_a_failing_step_proceed_and_stop_the_chain():
    defn = build(
        {"key": "a"},
        {"key": "b", "depends_on": [dep("a")]},
        {"key": "c", "depends_on": [dep("b", "optional")]},
        {"key": "d", "depends_on": [dep("c")]},
    )
    impacts = impact_of_rejection(defn, "a")
    assert [(i.step, i.outcome) for i in impacts] == [("b", Outcome.WAIT), ("c", Outcome.NONE)]


def test_no_impact_on_unrelated_or_leaf():
    assert impact_of_rejection(SEED, "invite") == []
    with pytest.raises(DomainError):
        impact_of_rejection(SEED, "ghost")


def test_modification_impact():
    impacts = impact_of_modification(SEED, "email")
    assert [(i.step, i.outcome) for i in impacts] == [
        ("invite", Outcome.SKIP),
        ("task", Outcome.FALLBACK),
    ]
    impacts = impact_of_modification(
        build(
            {"key": "a"},
            {"key": "b", "depends_on": ["a"]},
            {"key": "c", "depends_on": [dep("a", "enhances")]},
        ),
        "a",
    )
    assert [(i.step, i.outcome) for i in impacts] == [("b", Outcome.WAIT), ("c", Outcome.NONE)]


def test_ready_roots_and_blocks_need_success():
    states = {}
    assert ready_steps(SEED, states, {}) == ["lookup"]
    states = {"lookup": S.ACTIVE}
    assert ready_steps(SEED, states, {}) == []
    states = {"lookup": S.APPROVED}
    assert ready_steps(SEED, states, {}) == ["email", "note"]
    states = {"lookup": S.COMPLETED, "email": S.APPROVED, "note": S.ACTIVE}
    assert ready_steps(SEED, states, {}) == ["invite", "task"]


def test_enhances_and_optional_need_any_terminal_state():
    defn = build(
        {"key": "a"},
        {"key": "b", "depends_on": [dep("a", "enhances")]},
        {"key": "c", "depends_on": [dep("a", "optional", "fallback", fallback=1)]},
    )
    for state in (S.REJECTED, S.EXPIRED, S.SKIPPED, S.CANCELLED, S.FAILED, S.APPROVED):
        assert ready_steps(defn, {"a": state}, {}) == ["b", "c"], state
    assert ready_steps(defn, {"a": S.ACTIVE}, {}) == []
    r = evaluate_step(defn, {"a": S.REJECTED}, {}, "c")
    assert r.readiness is Readiness.READY and r.fallbacks == {"a": 1}


def test_blocking_upstream_rejected_by_resolution():
    defn = build(
        {"key": "a"},
        {"key": "wait", "depends_on": [dep("a")]},
        {"key": "skip", "depends_on": [dep("a", resolution="skip")]},
        {"key": "fb", "depends_on": [dep("a", resolution="fallback", fallback="x")]},
        {"key": "ask", "depends_on": [dep("a", resolution="ask_user")]},
    )
    states = {"a": S.REJECTED}
    assert ready_steps(defn, states, {}) == ["fb"]
    assert steps_to_skip(defn, states, {}) == ["skip"]
    assert steps_needing_user(defn, states, {}) == ["ask"]
    assert evaluate_step(defn, states, {}, "wait").readiness is Readiness.WAIT
    # a skipped upstream never comes back: waiting on it is pointless
    assert "wait" in steps_to_skip(defn, {"a": S.SKIPPED}, {})


def test_optional_dependency_on_rejected_upstream_with_skip():
    assert steps_to_skip(SEED, {"lookup": S.REJECTED}, {}) == ["note"]


def test_branches():
    defn = build(
        {"key": "d", "kind": "decision", "options": ["ship", "hold"]},
        {"key": "ship", "depends_on": [{"step": "d", "when": "ship"}]},
        {"key": "hold", "depends_on": [{"step": "d", "when": "hold"}]},
        {"key": "after_ship", "depends_on": ["ship"]},
        {"key": "m", "kind": "merge", "assignees": None, "depends_on": ["ship", "hold"]},
    )
    states = {"d": S.APPROVED}
    assert ready_steps(defn, states, {"d": "ship"}) == ["ship"]
    assert steps_to_skip(defn, states, {"d": "ship"}) == ["hold"]
    settled = settle(defn, states, {"d": "hold"})
    assert settled["ship"] is S.SKIPPED and settled["after_ship"] is S.SKIPPED
    assert settled["hold"] is S.WAITING
    # the merge waits for every branch to resolve
    assert "m" not in ready_steps(defn, settled, {"d": "hold"})
    settled["hold"] = S.APPROVED
    assert ready_steps(defn, settled, {"d": "hold"}) == ["m"]


def test_merge_with_no_successful_branch_is_skipped():
    defn = build(
        {"key": "a"},
        {"key": "b"},
        {"key": "m", "kind": "merge", "assignees": None, "depends_on": ["a", "b"]},
    )
    assert steps_to_skip(defn, {"a": S.REJECTED, "b": S.SKIPPED}, {}) == ["m"]
    assert ready_steps(defn, {"a": S.REJECTED, "b": S.APPROVED}, {}) == ["m"]


def test_only_waiting_steps_are_considered():
    assert ready_steps(SEED, {"lookup": S.APPROVED, "email": S.ACTIVE, "note": S.SKIPPED}, {}) == []


def test_unmet_blocking():
    states = {"lookup": S.APPROVED, "email": S.REJECTED, "invite": S.APPROVED, "task": S.APPROVED}
    assert unmet_blocking(SEED, states, "invite") == ["email"]
    assert unmet_blocking(SEED, states, "task") == []  # enhances never blocks
    assert unmet_blocking(SEED, states, "email") == []
    defn = build(
        {"key": "a"}, {"key": "b", "depends_on": [dep("a", resolution="fallback", fallback=1)]}
    )
    assert unmet_blocking(defn, {"a": S.REJECTED}, "b") == []
    assert unmet_blocking(defn, {"a": S.ACTIVE}, "b") == ["a"]
