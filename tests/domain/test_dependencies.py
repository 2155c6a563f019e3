import pytest

from signoff.domain.dependencies import (
    Outcome,
    Readiness,
    evaluate_step,
    failure_outcome,
    unmet_blocking,
)
from signoff.domain.states import StepState as S
from signoff.domain.templates import Dependency, DependencyEffect, Resolution, parse_template


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
        # seed 003: optional + skip skips the data, the step runs normally
        ("optional", "skip", Outcome.NONE),
        ("optional", "fallback", Outcome.FALLBACK),
        ("optional", "ask_user", Outcome.ASK_USER),
    ],
)
def test_failure_outcome_per_effect_and_resolution(effect, resolution, outcome):
    dependency = Dependency("a", DependencyEffect(effect), Resolution(resolution))
    assert failure_outcome(dependency, upstream_final=False) is outcome
    final = failure_outcome(dependency, upstream_final=True)
    assert final is (Outcome.SKIP if outcome is Outcome.WAIT else outcome)


def test_a_branch_is_followed_as_a_hard_dependency():
    branch = Dependency("d", DependencyEffect.OPTIONAL, Resolution.WAIT, when="ship")
    assert failure_outcome(branch, upstream_final=False) is Outcome.WAIT


def _verdicts(defn, states, values, waived=()):
    found = {}
    for key in defn.topological_order():
        if states.get(key, S.WAITING) is S.WAITING:
            found[key] = evaluate_step(defn, states, values, key, waived).readiness
    return found


def ready_steps(defn, states, values):
    return [k for k, r in _verdicts(defn, states, values).items() if r is Readiness.READY]


def steps_to_skip(defn, states, values):
    return [k for k, r in _verdicts(defn, states, values).items() if r is Readiness.SKIP]


def steps_needing_user(defn, states, values):
    return [k for k, r in _verdicts(defn, states, values).items() if r is Readiness.ASK_USER]


def settle(defn, states, values):
    current = {k: states.get(k, S.WAITING) for k in defn.topological_order()}
    while skips := steps_to_skip(defn, current, values):
        current.update(dict.fromkeys(skips, S.SKIPPED))
    return current


def test_a_waived_upstream_counts_as_met():
    defn = build({"key": "a"}, {"key": "b", "depends_on": [dep("a", resolution="ask_user")]})
    assert evaluate_step(defn, {"a": S.REJECTED}, {}, "b").readiness is Readiness.ASK_USER
    assert evaluate_step(defn, {"a": S.REJECTED}, {}, "b", ("a",)).readiness is Readiness.READY


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


def test_optional_dependency_on_rejected_upstream_with_skip_runs_without_it():
    assert steps_to_skip(SEED, {"lookup": S.REJECTED}, {}) == []
    assert "note" in ready_steps(SEED, {"lookup": S.REJECTED}, {})


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
