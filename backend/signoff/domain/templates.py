"""Templates: the public face of the template model.

Parsing and validation live in `template_parsing.py`, graph checks in `template_checks.py`, the
dataclasses in `template_model.py`; this module re-exports them and adds serialisation and the
adoption of agent plans, so that callers import one module.

`parse_template` is the only way to obtain a `TemplateDefinition` from outside data. It collects
every problem before refusing, because an author fixing a template one error per save is a
miserable loop, and it gives each problem the path of the offending field so that an editor
can underline it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from signoff.domain.durations import format_duration
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.limits import DEFAULT_LIMITS, TemplateLimits
from signoff.domain.payloads import validate_payload
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
from signoff.domain.template_parsing import Reader, invalid_template, parse_template

__all__ = [
    "DEFAULT_DEADLINE_RISK_RATIO",
    "Assignees",
    "AutoApprovalPolicy",
    "Dependency",
    "DependencyEffect",
    "EscalationActionKind",
    "EscalationLevel",
    "Quorum",
    "QuorumMode",
    "Resolution",
    "RiskLevel",
    "StepDefinition",
    "StepKind",
    "TemplateDefinition",
    "TemplateKind",
    "TimeoutAction",
    "parse_template",
    "plan_to_template",
    "step_to_dict",
    "template_to_dict",
    "validate_payload",
]


def step_to_dict(step: StepDefinition) -> dict[str, Any]:
    """One step as the document `parse_template` reads (durations as ISO-8601 strings)."""
    quorum: dict[str, Any] = {"mode": step.quorum.mode.value}
    if step.quorum.n is not None:
        quorum["n"] = step.quorum.n
    return {
        "key": step.key,
        "name": step.name,
        "kind": step.kind.value,
        "description": step.description,
        "assignees": step.assignees.to_dict(),
        "quorum": quorum,
        "risk": step.risk.value,
        "sla": format_duration(step.sla) if step.sla is not None else None,
        "reminders": [format_duration(r) for r in step.reminders],
        "deadline_risk_ratio": step.deadline_risk_ratio,
        "escalation": [
            {
                "after": format_duration(level.after),
                "action": level.action.value,
                "targets": level.targets.to_dict(),
                "priority": level.priority,
            }
            for level in step.escalation
        ],
        "timeout_action": step.timeout_action.value,
        "justification_required": step.justification_required,
        "sensitive": step.sensitive,
        "depends_on": [
            {
                "step": d.step,
                "effect": d.effect.value,
                "resolution": d.resolution.value,
                "fallback": d.fallback,
                "when": d.when,
            }
            for d in step.depends_on
        ],
        "action": step.action,
        "params": dict(step.params),
        "options": list(step.options),
        "max_attempts": step.max_attempts,
        "any_rejection_rejects": step.any_rejection_rejects,
        "allow_auto_approve": step.allow_auto_approve,
        "reassignable_by": list(step.reassignable_by),
        "expected_outcome": step.expected_outcome,
        "estimated_time": step.estimated_time,
        "required_permissions": list(step.required_permissions),
        "declared_risk": step.declared_risk.value if step.declared_risk else None,
    }


def template_to_dict(defn: TemplateDefinition) -> dict[str, Any]:
    """The template as a JSON-serialisable document; `parse_template` of it gives `defn` back."""
    policy = defn.auto_approval
    return {
        "key": defn.key,
        "name": defn.name,
        "kind": defn.kind.value,
        "description": defn.description,
        "fields": {name: dict(spec) for name, spec in defn.fields.items()},
        "max_revisions": defn.max_revisions,
        "compensate_on_failure": defn.compensate_on_failure,
        "action_risks": {action: risk.value for action, risk in defn.action_risks.items()},
        "summary": defn.summary,
        "auto_approval": None
        if policy is None
        else {
            "name": policy.name,
            "below_risk": policy.below_risk.value if policy.below_risk else None,
            "actions": list(policy.actions),
        },
        "steps": [step_to_dict(s) for s in defn.steps],
    }


_PLAN_STEP_KEYS = {
    "key",
    "action",
    "description",
    "params",
    "risk",
    "depends_on",
    "name",
    "expected_outcome",
    "estimated_time",
    "required_permissions",
}
# seed 003 spells the plan metadata in camelCase; both spellings are kept
_PLAN_ALIASES = {
    "expectedOutcome": "expected_outcome",
    "estimatedTime": "estimated_time",
    "requiredPermissions": "required_permissions",
}
_PROTOTYPE_FIELDS = (
    "assignees",
    "quorum",
    "sla",
    "reminders",
    "deadline_risk_ratio",
    "escalation",
    "timeout_action",
    "justification_required",
    "sensitive",
    "max_attempts",
    "any_rejection_rejects",
    "allow_auto_approve",
    "reassignable_by",
)


def assess_risk(
    action: str | None, declared: RiskLevel | None, base: TemplateDefinition
) -> RiskLevel:
    """The risk the system assigns a plan step: what the template declares for its action
    (`action_risks`; an action it does not list is high), raised, never lowered, by the risk
    the agent declares."""
    known = base.action_risks.get(action or "", RiskLevel.HIGH)
    if declared is not None and declared.rank > known.rank:
        return declared
    return known


def plan_to_template(
    plan: Mapping[str, Any],
    base: TemplateDefinition,
    limits: TemplateLimits = DEFAULT_LIMITS,
) -> TemplateDefinition:
    """Turn an agent-submitted plan into a `plan` template, one approval step per plan step.

    The plan says *what* each step does (action, params, declared risk, dependencies, and the
    seed's metadata: expected outcome, estimated time, required permissions); `base` says *who*
    reviews and *how fast*: its first step is the prototype whose assignees, quorum, SLA,
    reminders and escalation every plan step inherits, and its item-level settings (fields,
    revisions, compensation, auto-approval policy, per-action risks) carry over. Each step's
    risk is assessed by `assess_risk`; the agent's own figure is kept as `declared_risk`. The
    result goes through `parse_template`, so a plan gets exactly the validation an author's
    template gets, with paths such as `steps[1].depends_on[0].step` pointing into the plan.
    """
    reader = Reader()
    data = reader.mapping(plan, "")
    if data is None:
        raise invalid_template(reader.problems)
    reader.unknown_keys(data, {"title", "summary", "steps"}, "")
    title = reader.text(data, "title", "")
    summary = reader.text(data, "summary", "")
    if not base.steps:  # pragma: no cover - a parsed template always has steps
        raise DomainError(ErrorCode.TEMPLATE_INVALID, "the base template has no steps")
    prototype = step_to_dict(base.steps[0])
    raw_steps = data.get("steps")
    if raw_steps is None:
        reader.add("steps", "required")
    steps: list[Any] = []
    for i, raw in enumerate(reader.items(raw_steps, "steps")):
        spath = f"steps[{i}]"
        step = reader.mapping(raw, spath)
        if step is None:
            steps.append(raw)
            continue
        step = {_PLAN_ALIASES.get(k, k): v for k, v in step.items()}
        reader.unknown_keys(step, _PLAN_STEP_KEYS, spath)
        action = reader.text(step, "action", spath, required=True)
        declared = reader.choice(step, "risk", spath, RiskLevel, None) if step.get("risk") else None
        assessed = assess_risk(action, declared, base)
        merged = {k: prototype[k] for k in _PROTOTYPE_FIELDS}
        merged.update(
            {
                "key": step.get("key"),
                "name": step.get("name") or step.get("description") or action or step.get("key"),
                "kind": StepKind.APPROVAL.value,
                "description": step.get("description") or "",
                "risk": assessed.value,
                "declared_risk": declared.value if declared else None,
                "action": action,
                "params": step.get("params") or {},
                "depends_on": step.get("depends_on") or [],
                "expected_outcome": step.get("expected_outcome"),
                "estimated_time": step.get("estimated_time"),
                "required_permissions": step.get("required_permissions"),
            }
        )
        if merged["timeout_action"] == TimeoutAction.APPROVE.value and assessed.is_elevated:
            # an inherited auto-approve timeout must not reach a risky plan step
            merged["timeout_action"] = TimeoutAction.EXPIRE.value
        steps.append(merged)
    document = template_to_dict(base)
    document.update({"kind": TemplateKind.PLAN.value, "steps": steps})
    if title:
        document["name"] = title
    if summary:
        document["summary"] = summary
    try:
        defn = parse_template(document, limits)
    except DomainError as exc:
        raise invalid_template(reader.problems + exc.problems) from None
    if reader.problems:
        raise invalid_template(reader.problems)
    return defn
