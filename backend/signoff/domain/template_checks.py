"""Whole-graph checks on a template's steps: cycles, references, depth, reachability, joins.

They run after every step parsed on its own, on the parsed steps, and report `Problem`s with
paths in the author's terms (`steps[2].depends_on[0].step`) rather than raising, so that
`parse_template` can return every problem at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from signoff.domain.errors import Problem
from signoff.domain.limits import TemplateLimits
from signoff.domain.template_model import DependencyEffect, StepDefinition, StepKind


def _dep_path(index: int, dep_index: int, leaf: str = "step") -> str:
    return f"steps[{index}].depends_on[{dep_index}].{leaf}"


def check_graph(steps: Sequence[StepDefinition], limits: TemplateLimits) -> list[Problem]:
    """Every graph-level problem of `steps`; an empty list means the DAG is sound."""
    problems: list[Problem] = []
    index: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step.key in index:
            problems.append(
                Problem(
                    f"duplicate step key {step.key!r} (first used by steps[{index[step.key]}])",
                    f"steps[{i}].key",
                )
            )
        else:
            index[step.key] = i
    by_key = {s.key: s for s in steps}

    for i, step in enumerate(steps):
        seen: set[str] = set()
        for j, dep in enumerate(step.depends_on):
            if dep.step == step.key:
                problems.append(Problem(f"step {step.key!r} depends on itself", _dep_path(i, j)))
            elif dep.step not in by_key:
                problems.append(
                    Problem(f"unknown step {dep.step!r} in depends_on", _dep_path(i, j))
                )
            elif dep.step in seen and dep.when is None:
                problems.append(
                    Problem(f"step {dep.step!r} is listed twice in depends_on", _dep_path(i, j))
                )
            seen.add(dep.step)
        if step.kind is StepKind.MERGE and len({d.step for d in step.depends_on}) < 2:
            problems.append(
                Problem(
                    "a merge step joins branches: it needs at least 2 inbound dependencies",
                    f"steps[{i}].depends_on",
                )
            )

    cycle = find_cycle(steps)
    if cycle:
        problems.append(Problem("cycle: " + " -> ".join(cycle), "steps"))
    else:
        problems.extend(_check_depth(steps, index, limits))
    problems.extend(_check_reachability(steps, index, by_key))
    return problems


def find_cycle(steps: Sequence[StepDefinition]) -> list[str] | None:
    """A cycle as `[a, b, c, a]` (upstream to downstream), or None.

    Depth-first with colours; the first cycle found in declaration order is named so that the
    message is stable between saves of the same template.
    """
    known = {s.key for s in steps}
    downstream: dict[str, list[str]] = {s.key: [] for s in steps}
    for step in steps:
        for dep in step.depends_on:
            if dep.step in known and dep.step != step.key:
                downstream[dep.step].append(step.key)
    colour: dict[str, int] = dict.fromkeys(downstream, 0)  # 0 new, 1 on the path, 2 done
    # iterative depth-first search: a huge template must not exhaust the recursion limit
    for root in downstream:
        if colour[root]:
            continue
        path = [root]
        children = [iter(downstream[root])]
        colour[root] = 1
        while path:
            child = next(children[-1], None)
            if child is None:
                colour[path.pop()] = 2
                children.pop()
            elif colour[child] == 1:
                return [*path[path.index(child) :], child]
            elif colour[child] == 0:
                colour[child] = 1
                path.append(child)
                children.append(iter(downstream[child]))
    return None


def dependency_depth(steps: Sequence[StepDefinition]) -> dict[str, int]:
    """For each step, the number of edges on the longest path from a root (roots are 0).

    Only meaningful for an acyclic graph; unknown references are ignored.
    """
    # iterative (Kahn's order), so that a huge template cannot exhaust the recursion limit
    ups = {s.key: {d.step for d in s.depends_on if d.step != s.key} for s in steps}
    known = set(ups)
    for key in ups:
        ups[key] &= known
    downstream: dict[str, list[str]] = {k: [] for k in ups}
    for key, parents in ups.items():
        for parent in parents:
            downstream[parent].append(key)
    pending = {k: len(v) for k, v in ups.items()}
    depth = dict.fromkeys(ups, 0)
    queue = [k for k, n in pending.items() if n == 0]
    while queue:
        key = queue.pop()
        for child in downstream[key]:
            depth[child] = max(depth[child], depth[key] + 1)
            pending[child] -= 1
            if pending[child] == 0:
                queue.append(child)
    return depth


def _check_depth(
    steps: Sequence[StepDefinition], index: dict[str, int], limits: TemplateLimits
) -> list[Problem]:
    # one problem for the deepest step: every step below it would only repeat the same news
    depths = dependency_depth(steps)
    if not depths:
        return []
    deepest = max(depths, key=lambda k: (depths[k], -index[k]))
    if depths[deepest] <= limits.max_dependency_depth:
        return []
    return [
        Problem(
            f"dependency chain of {depths[deepest]} steps exceeds the limit of "
            f"{limits.max_dependency_depth}",
            f"steps[{index[deepest]}].depends_on",
        )
    ]


def _check_reachability(
    steps: Sequence[StepDefinition], index: dict[str, int], by_key: dict[str, StepDefinition]
) -> list[Problem]:
    """Steps whose dependencies can never all be satisfied.

    A `when` branch on a value the decision step cannot produce, two `when`s on the same
    decision that disagree, or a hard dependency on a step that is itself unreachable. A merge is
    unreachable only when all its inbound branches are.
    """
    problems: list[Problem] = []
    if find_cycle(steps):
        return problems  # reachability is undefined on a cycle; the cycle is already reported
    unreachable: set[str] = set()
    # upstream before downstream, so that unreachability flows down the chain in one pass
    ranks = dependency_depth(steps)
    ordered = sorted(steps, key=lambda s: ranks.get(s.key, 0))
    for step in ordered:
        i = index.get(step.key)
        if i is None or steps[i] is not step:
            continue  # a duplicate key, already reported
        reasons: list[Problem] = []
        chosen: dict[str, str] = {}
        inbound_dead = 0
        for j, dep in enumerate(step.depends_on):
            upstream = by_key.get(dep.step)
            if upstream is None:
                continue
            if dep.when is not None:
                if upstream.kind is not StepKind.DECISION:
                    reasons.append(
                        Problem(
                            f"'when' needs a decision step, but {dep.step!r} is a "
                            f"{upstream.kind.value} step",
                            _dep_path(i, j, "when"),
                        )
                    )
                    continue
                if dep.when not in upstream.options:
                    reasons.append(
                        Problem(
                            f"unreachable: decision {dep.step!r} has no option {dep.when!r} "
                            f"(options: {', '.join(upstream.options) or 'none'})",
                            _dep_path(i, j, "when"),
                        )
                    )
                    inbound_dead += 1
                    continue
                if chosen.setdefault(dep.step, dep.when) != dep.when:
                    reasons.append(
                        Problem(
                            f"unreachable: decision {dep.step!r} cannot be both "
                            f"{chosen[dep.step]!r} and {dep.when!r}",
                            _dep_path(i, j, "when"),
                        )
                    )
                    inbound_dead += 1
                    continue
            if dep.step in unreachable:
                inbound_dead += 1
                if step.kind is not StepKind.MERGE and dep.effect is DependencyEffect.BLOCKS:
                    reasons.append(
                        Problem(
                            f"unreachable: it is blocked by {dep.step!r}, which can never run",
                            _dep_path(i, j),
                        )
                    )
        if step.kind is StepKind.MERGE:
            merge_dead = bool(step.depends_on) and inbound_dead >= len(step.depends_on)
            reasons = [p for p in reasons if not p.message.startswith("unreachable")]
            if merge_dead:
                reasons.append(
                    Problem(
                        "unreachable: none of the merged branches can ever run",
                        f"steps[{i}].depends_on",
                    )
                )
        if any(p.message.startswith("unreachable") for p in reasons):
            unreachable.add(step.key)
        problems.extend(reasons)
    return problems
