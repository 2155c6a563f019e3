"""Template parsing: read and validate an author's template document.

`parse_template` is the only way to obtain a `TemplateDefinition` from outside data. It collects
every problem before refusing, because an author fixing a template one error per save is a
miserable loop, and it gives each problem the path of the offending field so that an editor
can underline it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from signoff.domain.durations import format_duration
from signoff.domain.errors import DomainError, ErrorCode, Problem
from signoff.domain.limits import DEFAULT_LIMITS, TemplateLimits
from signoff.domain.payloads import FIELD_TYPES
from signoff.domain.template_checks import check_graph
from signoff.domain.template_model import (
    DEFAULT_DEADLINE_RISK_RATIO,
    Assignees,
    AutoApprovalPolicy,
    Dependency,
    DependencyEffect,
    EscalationActionKind,
    EscalationLevel,
    Quorum,
    QuorumMode,
    Resolution,
    RiskLevel,
    StepDefinition,
    StepKind,
    TemplateDefinition,
    TemplateKind,
    TimeoutAction,
)
from signoff.domain.template_reader import Reader, type_name

__all__ = ["Reader", "invalid_template", "parse_template"]

_TEMPLATE_KEYS = {
    "key",
    "name",
    "kind",
    "description",
    "fields",
    "steps",
    "max_revisions",
    "compensate_on_failure",
    "auto_approval",
    "action_risks",
    "summary",
}
_STEP_KEYS = {
    "key",
    "name",
    "kind",
    "description",
    "assignees",
    "quorum",
    "risk",
    "sla",
    "reminders",
    "deadline_risk_ratio",
    "escalation",
    "timeout_action",
    "justification_required",
    "sensitive",
    "depends_on",
    "action",
    "params",
    "options",
    "max_attempts",
    "any_rejection_rejects",
    "allow_auto_approve",
    "reassignable_by",
    "expected_outcome",
    "estimated_time",
    "required_permissions",
    "declared_risk",
}
_FIELD_SPEC_KEYS = {"type", "required", "max_length", "enum", "description"}


def parse_template(
    data: Mapping[str, Any], limits: TemplateLimits = DEFAULT_LIMITS
) -> TemplateDefinition:
    """Validate an author's template document and return the immutable definition.

    Raises one `DomainError(TEMPLATE_INVALID)` whose `problems` list every problem found, each
    with the path of the offending field. See `docs/reference/templates.md` for the shape.
    """
    reader = Reader()
    root = reader.mapping(data, "")
    if root is None:
        raise invalid_template(reader.problems)
    reader.unknown_keys(root, _TEMPLATE_KEYS, "")
    key = reader.text(root, "key", "", required=True)
    name = reader.text(root, "name", "", required=True)
    kind = reader.choice(root, "kind", "", TemplateKind, None)
    description = reader.text(root, "description", "") or ""
    max_revisions = reader.integer(root, "max_revisions", "", 3, 0)
    compensate = reader.flag(root, "compensate_on_failure", "", False)
    fields = _parse_fields(reader, root.get("fields"))
    policy = _parse_policy(reader, root.get("auto_approval"))
    action_risks = _parse_action_risks(reader, root.get("action_risks"))
    summary = reader.text(root, "summary", "") or ""

    raw_steps = root.get("steps")
    if raw_steps is None:
        reader.add("steps", "required")
        raw_steps = []
    step_items = reader.items(raw_steps, "steps")
    if not step_items and raw_steps is not None and isinstance(raw_steps, list | tuple):
        reader.add("steps", "a template needs at least one step")
    if len(step_items) > limits.max_steps:
        reader.add(
            "steps", f"{len(step_items)} steps exceed the limit of {limits.max_steps} per template"
        )
    steps = []
    for i, raw in enumerate(step_items):
        parsed = _parse_step(reader, raw, f"steps[{i}]", limits)
        if parsed is not None:
            steps.append(parsed)
    if len(steps) == len(step_items):
        # graph checks need every step, or they would report references to broken ones
        reader.problems.extend(check_graph(steps, limits))

    if reader.problems:
        raise invalid_template(reader.problems)
    assert key is not None and name is not None and kind is not None
    assert max_revisions is not None
    return TemplateDefinition(
        key=key,
        name=name,
        kind=kind,
        description=description,
        fields=fields,
        steps=tuple(steps),
        max_revisions=max_revisions,
        compensate_on_failure=compensate,
        auto_approval=policy,
        action_risks=action_risks,
        summary=summary,
    )


def invalid_template(problems: list[Problem]) -> DomainError:
    count = len(problems)
    return DomainError(
        ErrorCode.TEMPLATE_INVALID,
        f"template has {count} problem{'s' if count != 1 else ''}: "
        + "; ".join(f"{p.path or '(root)'}: {p.message}" for p in problems[:5])
        + (" ..." if count > 5 else ""),
        problems=list(problems),
    )


def _parse_fields(reader: Reader, value: Any) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    fields = reader.mapping(value, "fields")
    if fields is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name, raw in fields.items():
        path = f"fields.{name}"
        spec = reader.mapping(raw, path)
        if spec is None:
            continue
        reader.unknown_keys(spec, _FIELD_SPEC_KEYS, path)
        ftype = spec.get("type")
        if ftype not in FIELD_TYPES:
            reader.add(f"{path}.type", f"expected one of {', '.join(FIELD_TYPES)}")
            continue
        required = reader.flag(spec, "required", path, False)
        clean: dict[str, Any] = {"type": ftype, "required": required}
        max_length = reader.integer(spec, "max_length", path, None, 1)
        if max_length is not None:
            if ftype not in ("string", "array"):
                reader.add(f"{path}.max_length", "only applies to string and array fields")
            clean["max_length"] = max_length
        if spec.get("enum") is not None:
            enum = spec["enum"]
            if not isinstance(enum, list | tuple) or not enum:
                reader.add(f"{path}.enum", "expected a non-empty list of allowed values")
            else:
                clean["enum"] = list(enum)
        if isinstance(spec.get("description"), str):
            clean["description"] = spec["description"]
        out[str(name)] = clean
    return out


def _parse_action_risks(reader: Reader, value: Any) -> dict[str, RiskLevel]:
    if value is None:
        return {}
    data = reader.mapping(value, "action_risks")
    risks: dict[str, RiskLevel] = {}
    for action in data or {}:
        level = reader.choice(data or {}, action, "action_risks", RiskLevel, None)
        if level is not None:
            risks[str(action)] = level
    return risks


def _parse_policy(reader: Reader, value: Any) -> AutoApprovalPolicy | None:
    if value is None:
        return None
    data = reader.mapping(value, "auto_approval")
    if data is None:
        return None
    reader.unknown_keys(data, {"name", "below_risk", "actions"}, "auto_approval")
    below = (
        reader.choice(data, "below_risk", "auto_approval", RiskLevel, RiskLevel.LOW)
        if data.get("below_risk") is not None
        else None
    )
    actions = reader.strings(data.get("actions"), "auto_approval.actions")
    if below is None and not actions:
        reader.add("auto_approval", "a policy needs below_risk or actions, or it approves nothing")
    name = reader.text(data, "name", "auto_approval") or "auto-approval"
    return AutoApprovalPolicy(below_risk=below, actions=actions, name=name)


def _parse_assignees(reader: Reader, value: Any, path: str) -> Assignees:
    if value is None:
        return Assignees()
    data = reader.mapping(value, path)
    if data is None:
        return Assignees()
    reader.unknown_keys(data, {"users", "groups", "roles", "seats"}, path)
    groups = reader.strings(data.get("groups"), f"{path}.groups")
    roles = reader.strings(data.get("roles"), f"{path}.roles")
    counts: dict[str, int] = {}
    raw_counts = data.get("seats")
    stated = reader.mapping(raw_counts, f"{path}.seats") if raw_counts is not None else None
    for name, count in (stated or {}).items():
        cpath = f"{path}.seats.{name}"
        if (name in groups) == (name in roles):
            reader.add(
                cpath,
                "names both a group and a role" if name in groups else "names no group or role",
            )
        elif isinstance(count, bool) or not isinstance(count, int) or count < 1:
            reader.add(cpath, "expected a number of seats of at least 1")
        else:
            counts[str(name)] = count
    return Assignees(
        users=reader.strings(data.get("users"), f"{path}.users"),
        groups=groups,
        roles=roles,
        counts=counts,
    )


def _parse_quorum(reader: Reader, value: Any, path: str, assignees: Assignees) -> Quorum:
    if value is None:
        return Quorum()
    if isinstance(value, str):
        value = {"mode": value}
    data = reader.mapping(value, path)
    if data is None:
        return Quorum()
    reader.unknown_keys(data, {"mode", "n"}, path)
    mode = reader.choice(data, "mode", path, QuorumMode, QuorumMode.ANY) or QuorumMode.ANY
    raw_n = data.get("n")
    if mode is not QuorumMode.N_OF_M:
        if raw_n is not None:
            reader.add(f"{path}.n", "n only applies to the n_of_m mode")
        return Quorum(mode)
    if raw_n is None:
        reader.add(f"{path}.n", "required for the n_of_m mode")
        return Quorum(mode)
    if isinstance(raw_n, bool) or not isinstance(raw_n, int):
        reader.add(f"{path}.n", f"expected an integer, got {type_name(raw_n)}")
        return Quorum(mode)
    if raw_n < 1:
        reader.add(f"{path}.n", "must be at least 1")
    seats = assignees.seat_count
    if raw_n > seats:
        reader.add(
            f"{path}.n",
            f"needs {raw_n} approvals but its assignees hold only {seats} seat"
            f"{'s' if seats != 1 else ''} (a group or role holds one unless assignees.seats "
            "states more)",
        )
    return Quorum(mode, raw_n)


def _parse_escalation(
    reader: Reader, value: Any, path: str, limits: TemplateLimits
) -> tuple[EscalationLevel, ...]:
    items = reader.items(value, path)
    if len(items) > limits.max_escalation_levels:
        reader.add(
            path,
            f"{len(items)} escalation levels exceed the limit of {limits.max_escalation_levels}",
        )
    levels: list[EscalationLevel] = []
    previous = None
    for i, raw in enumerate(items):
        lpath = f"{path}[{i}]"
        data = reader.mapping(raw, lpath)
        if data is None:
            continue
        reader.unknown_keys(data, {"after", "action", "targets", "priority"}, lpath)
        after = None
        if data.get("after") is None:
            reader.add(f"{lpath}.after", "required")
        else:
            after = reader.duration(data["after"], f"{lpath}.after")
        action = reader.choice(
            data, "action", lpath, EscalationActionKind, EscalationActionKind.NOTIFY
        )
        targets = _parse_assignees(reader, data.get("targets"), f"{lpath}.targets")
        priority = reader.integer(data, "priority", lpath, None, 0)
        if action in (EscalationActionKind.ADD_ASSIGNEES, EscalationActionKind.REASSIGN) and (
            targets.is_empty
        ):
            reader.add(f"{lpath}.targets", f"{action.value} needs at least one target")
        if after is not None:
            if previous is not None and after <= previous:
                reader.add(
                    f"{lpath}.after",
                    f"escalation levels must be strictly increasing: {format_duration(after)} "
                    f"is not after {format_duration(previous)}",
                )
            previous = after
            assert action is not None
            levels.append(EscalationLevel(after, action, targets, priority))
    return tuple(levels)


def _parse_dependencies(reader: Reader, value: Any, path: str) -> tuple[Dependency, ...]:
    deps = []
    for j, raw in enumerate(reader.items(value, path)):
        dpath = f"{path}[{j}]"
        if isinstance(raw, str):
            raw = {"step": raw}  # shorthand: a plain upstream key is a blocking dependency
        data = reader.mapping(raw, dpath)
        if data is None:
            continue
        reader.unknown_keys(data, {"step", "effect", "resolution", "fallback", "when"}, dpath)
        upstream = reader.text(data, "step", dpath, required=True)
        effect = reader.choice(data, "effect", dpath, DependencyEffect, DependencyEffect.BLOCKS)
        resolution = reader.choice(data, "resolution", dpath, Resolution, Resolution.WAIT)
        when = reader.text(data, "when", dpath)
        fallback = data.get("fallback")
        if fallback is not None and resolution is not Resolution.FALLBACK:
            reader.add(f"{dpath}.fallback", "a fallback value needs resolution: fallback")
        if upstream is not None and effect is not None and resolution is not None:
            deps.append(Dependency(upstream, effect, resolution, fallback, when))
    return tuple(deps)


def _parse_step(
    reader: Reader, raw: Any, path: str, limits: TemplateLimits
) -> StepDefinition | None:
    data = reader.mapping(raw, path)
    if data is None:
        return None
    reader.unknown_keys(data, _STEP_KEYS, path)
    before = len(reader.problems)
    key = reader.text(data, "key", path, required=True)
    name = reader.text(data, "name", path) or key or ""
    kind = reader.choice(data, "kind", path, StepKind, StepKind.APPROVAL) or StepKind.APPROVAL
    assignees = _parse_assignees(reader, data.get("assignees"), f"{path}.assignees")
    if kind is not StepKind.MERGE and assignees.is_empty:
        reader.add(f"{path}.assignees", f"a {kind.value} step needs at least one assignee")
    quorum = _parse_quorum(reader, data.get("quorum"), f"{path}.quorum", assignees)
    risk = reader.choice(data, "risk", path, RiskLevel, RiskLevel.LOW) or RiskLevel.LOW
    sla = None
    if data.get("sla") is not None:
        sla = reader.duration(data["sla"], f"{path}.sla")
    reminders = []
    for i, item in enumerate(reader.items(data.get("reminders"), f"{path}.reminders")):
        td = reader.duration(item, f"{path}.reminders[{i}]")
        if td is not None:
            reminders.append(td)
    ratio = _parse_ratio(reader, data, path, sla)
    escalation = _parse_escalation(reader, data.get("escalation"), f"{path}.escalation", limits)
    default_timeout = TimeoutAction.ESCALATE if escalation else TimeoutAction.EXPIRE
    timeout = reader.choice(data, "timeout_action", path, TimeoutAction, default_timeout)
    sensitive = reader.flag(data, "sensitive", path, False)
    allow_auto = reader.flag(data, "allow_auto_approve", path, False)
    if timeout is TimeoutAction.APPROVE:
        why = _auto_approve_refusal(allow_auto, sensitive, risk)
        if why:
            reader.add(f"{path}.timeout_action", f"approve on timeout is not allowed: {why}")
    options = reader.strings(data.get("options"), f"{path}.options")
    if kind is StepKind.DECISION and len(set(options)) < 2:
        reader.add(f"{path}.options", "a decision step needs at least 2 distinct options")
    elif kind is not StepKind.DECISION and options:
        reader.add(f"{path}.options", "only decision steps have options")
    quorum_after_reassign(reader, escalation, quorum, f"{path}.escalation")
    params = data.get("params")
    if params is None:
        params = {}
    elif not isinstance(params, Mapping):
        reader.add(f"{path}.params", f"expected a mapping, got {type_name(params)}")
        params = {}
    step = StepDefinition(
        key=key or "",
        name=name,
        kind=kind,
        description=reader.text(data, "description", path) or "",
        assignees=assignees,
        quorum=quorum,
        risk=risk,
        sla=sla,
        reminders=tuple(sorted(reminders)),
        deadline_risk_ratio=ratio,
        escalation=escalation,
        timeout_action=timeout or default_timeout,
        justification_required=reader.flag(data, "justification_required", path, False),
        sensitive=sensitive,
        depends_on=_parse_dependencies(reader, data.get("depends_on"), f"{path}.depends_on"),
        action=reader.text(data, "action", path),
        params=dict(params),
        options=options,
        max_attempts=reader.integer(data, "max_attempts", path, 3, 1) or 3,
        any_rejection_rejects=reader.flag(data, "any_rejection_rejects", path, True),
        allow_auto_approve=allow_auto,
        reassignable_by=reader.strings(data.get("reassignable_by"), f"{path}.reassignable_by"),
        expected_outcome=reader.text(data, "expected_outcome", path) or "",
        estimated_time=reader.text(data, "estimated_time", path) or "",
        required_permissions=reader.strings(
            data.get("required_permissions"), f"{path}.required_permissions"
        ),
        declared_risk=(
            reader.choice(data, "declared_risk", path, RiskLevel, None)
            if data.get("declared_risk") is not None
            else None
        ),
    )
    # a step without a usable key cannot take part in graph checks
    if key is None and len(reader.problems) > before:
        return None
    return step


def quorum_after_reassign(
    reader: Reader, levels: tuple[EscalationLevel, ...], quorum: Quorum, path: str
) -> None:
    """An escalation level that reassigns a step must leave seats enough for its quorum."""
    if quorum.mode is not QuorumMode.N_OF_M or quorum.n is None:
        return
    for i, level in enumerate(levels):
        seats = level.targets.seat_count
        if level.action is EscalationActionKind.REASSIGN and seats < quorum.n:
            reader.add(
                f"{path}[{i}].targets",
                f"reassigning to {seats} seat{'s' if seats != 1 else ''} cannot meet the "
                f"quorum of {quorum.n}",
            )


def _parse_ratio(reader: Reader, data: Mapping[str, Any], path: str, sla: Any) -> float | None:
    value = data.get("deadline_risk_ratio")
    if value is None:
        return DEFAULT_DEADLINE_RISK_RATIO if sla is not None else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        reader.add(f"{path}.deadline_risk_ratio", f"expected a number, got {type_name(value)}")
        return None
    if not 0 < value < 1:
        reader.add(f"{path}.deadline_risk_ratio", "must be between 0 and 1 (exclusive)")
        return None
    if sla is None and "sla" not in data:
        reader.add(f"{path}.deadline_risk_ratio", "needs an sla to be a fraction of")
        return None
    return float(value)


def _auto_approve_refusal(allowed: bool, sensitive: bool, risk: RiskLevel) -> str | None:
    if not allowed:
        return "set allow_auto_approve: true on the step"
    if sensitive:
        return "the step is sensitive"
    if risk.is_elevated:
        return f"the step is {risk.value} risk"
    return None
