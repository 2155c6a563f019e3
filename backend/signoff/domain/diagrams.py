"""Pictures of the flow: a template's step graph as Mermaid flowchart text, coloured by step
state for a live item.

One node per step (its name, kind and quorum), one edge per dependency: solid for `blocks`,
dotted for `enhances` and `optional`, labelled with what happens when the upstream step does
not succeed (`skip`, `fallback`, `ask_user`; `wait`, the default, is unlabelled). Steps without
dependencies start when the item is submitted. Mermaid renders in GitHub, GitLab, most wikis
and in a browser through mermaid.js, so a console can draw it without a server-side renderer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from signoff.domain.template_model import (
    Dependency,
    DependencyEffect,
    QuorumMode,
    Resolution,
    StepDefinition,
    TemplateDefinition,
)

# fill / stroke per state; a state not listed keeps Mermaid's default look
STATE_STYLES: dict[str, str] = {
    "waiting": "fill:#eceff1,stroke:#90a4ae,color:#37474f",
    "active": "fill:#fff3cd,stroke:#f0ad4e,color:#5f4300",
    "held": "fill:#ffe0b2,stroke:#fb8c00,color:#5f3300",
    "changes_requested": "fill:#ffe0b2,stroke:#fb8c00,color:#5f3300",
    "approved": "fill:#d4edda,stroke:#28a745,color:#155724",
    "running": "fill:#d1ecf1,stroke:#17a2b8,color:#0c5460",
    "completed": "fill:#d4edda,stroke:#28a745,color:#155724",
    "rejected": "fill:#f8d7da,stroke:#dc3545,color:#721c24",
    "failed": "fill:#f8d7da,stroke:#dc3545,color:#721c24",
    "expired": "fill:#f8d7da,stroke:#dc3545,color:#721c24",
    "skipped": "fill:#f5f5f5,stroke:#bdbdbd,color:#757575,stroke-dasharray:4 3",
    "cancelled": "fill:#f5f5f5,stroke:#bdbdbd,color:#757575,stroke-dasharray:4 3",
    "compensated": "fill:#f5f5f5,stroke:#bdbdbd,color:#757575",
}

_UNSAFE = re.compile(r"[^A-Za-z0-9]")


def node_id(key: str) -> str:
    """A Mermaid node id for a step key: letters and digits kept, `_` doubled, anything else
    (characters Mermaid reads as syntax) as `_<hex>_`, so that distinct keys stay distinct."""
    return "s_" + _UNSAFE.sub(lambda m: "__" if m[0] == "_" else f"_{ord(m[0]):x}_", key)


def _text(text: str) -> str:
    """Text inside a quoted Mermaid label: quotes and markup as entities."""
    return (
        text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
    )


def quorum_text(step: StepDefinition) -> str:
    """How a step's quorum reads in a picture: `any`, `all`, `2 of m`, …."""
    quorum = step.quorum
    if quorum.mode is QuorumMode.N_OF_M and quorum.n:
        return f"{quorum.n} of m"
    return quorum.mode.value


def _label(step: StepDefinition, state: str | None) -> str:
    lines = [_text(step.name or step.key), f"{step.kind.value} · {quorum_text(step)}"]
    if state:
        lines.append(f"<i>{_text(state)}</i>")
    return "<br/>".join(lines)


def dependency_label(dep: Dependency) -> str:
    """What an edge says: the resolution when the upstream step does not succeed (none for
    `wait`, the default), after `optional` for an optional dependency."""
    label = "" if dep.resolution is Resolution.WAIT else dep.resolution.value
    if dep.effect is DependencyEffect.OPTIONAL:
        label = f"optional {label}".strip()
    return label


def mermaid(definition: TemplateDefinition, states: Mapping[str, str] | None = None) -> str:
    """The step graph of `definition` as a Mermaid flowchart; with `states` (step key → state),
    each step is labelled with its state and coloured by it."""
    states = states or {}
    out = ["flowchart LR"]
    for step in definition.steps:
        out.append(f'  {node_id(step.key)}["{_label(step, states.get(step.key))}"]')
    for step in definition.steps:
        for dep in step.depends_on:
            arrow = "-->" if dep.effect is DependencyEffect.BLOCKS else "-.->"
            label = dependency_label(dep)
            edge = f"{arrow}|{label}|" if label else arrow
            out.append(f"  {node_id(dep.step)} {edge} {node_id(step.key)}")
    styled = [s for s in definition.steps if states.get(s.key) in STATE_STYLES]
    for state in sorted({states[s.key] for s in styled}):
        members = ",".join(node_id(s.key) for s in styled if states[s.key] == state)
        out.append(f"  classDef {state} {STATE_STYLES[state]}")
        out.append(f"  class {members} {state}")
    return "\n".join(out) + "\n"
