"""Pictures of the flow as SVG: the same step graph as `diagrams.mermaid`, laid out on the
server so that a page, a mail or a document can show it without running a renderer.

The layout is grandalf's Sugiyama layering (layers by dependency, crossings reduced, edges
routed through the gaps between layers), turned to run left to right as the Mermaid picture
does. Boxes are sized from their text with a fixed per-character width (no font metrics on the
server), which holds for the sans-serif fonts browsers pick. The output is deterministic: the
same template and states always give the same bytes.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from xml.sax.saxutils import escape, quoteattr

from grandalf.graphs import Edge, Vertex, graph_core
from grandalf.layouts import SugiyamaLayout

from signoff.domain.diagrams import STATE_STYLES, dependency_label, mermaid, quorum_text
from signoff.domain.template_model import DependencyEffect, TemplateDefinition

FONT_SIZE = 13
LINE_HEIGHT = 18
CHAR_WIDTH = 7.4  # average advance of a 13px sans-serif glyph, rounded up
PADDING_X = 14
PADDING_Y = 9
LAYER_GAP = 70  # between layers (left to right)
SIBLING_GAP = 26  # between boxes of one layer (top to bottom)
MARGIN = 16
COMPONENT_GAP = 30


class DiagramFormat(StrEnum):
    """How a step graph is drawn."""

    MERMAID = "mermaid"
    SVG = "svg"


def draw(
    definition: TemplateDefinition,
    states: Mapping[str, str] | None = None,
    fmt: DiagramFormat = DiagramFormat.MERMAID,
) -> str:
    """The step graph of `definition` (coloured by `states`, if given) in format `fmt`."""
    if fmt is DiagramFormat.SVG:
        return svg(definition, states)
    return mermaid(definition, states)


_DEFAULT_STYLE = {"fill": "#ffffff", "stroke": "#546e7a", "color": "#263238"}


def _style(state: str | None) -> dict[str, str]:
    """Fill, stroke, text colour and dash pattern of a state (from the Mermaid styles)."""
    style = dict(_DEFAULT_STYLE)
    for part in STATE_STYLES.get(state or "", "").split(","):
        name, _, value = part.partition(":")
        if value:
            style[name] = value
    return style


@dataclass
class _Box:
    """grandalf's view of a vertex: its size in, its centre out (in grandalf's top-down frame,
    so `w` is the box's height and `h` its width: the picture is turned afterwards)."""

    w: float
    h: float
    xy: tuple[float, float] = (0.0, 0.0)


@dataclass
class _Route:
    """grandalf's view of an edge: the points it is routed through."""

    points: list[tuple[float, float]] = field(default_factory=list)

    def setpath(self, points: Sequence[Sequence[float]]) -> None:
        self.points = [(float(x), float(y)) for x, y in points]


@dataclass(frozen=True)
class _Node:
    key: str
    lines: tuple[str, ...]
    state: str | None
    width: float
    height: float


def _node(step_key: str, name: str, detail: str, state: str | None) -> _Node:
    lines = (name, detail) + ((state,) if state else ())
    width = max(len(line) for line in lines) * CHAR_WIDTH + 2 * PADDING_X
    height = len(lines) * LINE_HEIGHT + 2 * PADDING_Y
    return _Node(step_key, lines, state, round(width, 1), float(height))


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def svg(definition: TemplateDefinition, states: Mapping[str, str] | None = None) -> str:
    """The step graph of `definition` as a standalone SVG document; with `states` (step key →
    state), each step is labelled with its state and coloured by it."""
    states = states or {}
    nodes = {
        step.key: _node(
            step.key,
            step.name or step.key,
            f"{step.kind.value} · {quorum_text(step)}",
            states.get(step.key),
        )
        for step in definition.steps
    }
    vertices = {key: Vertex(key) for key in nodes}
    for key, vertex in vertices.items():
        vertex.view = _Box(w=nodes[key].height, h=nodes[key].width)
    edges: list[tuple[Edge, str, str, bool, str]] = []
    for step in definition.steps:
        for dep in step.depends_on:
            edge = Edge(vertices[dep.step], vertices[step.key])
            edge.view = _Route()
            solid = dep.effect is DependencyEffect.BLOCKS
            edges.append((edge, dep.step, step.key, solid, dependency_label(dep)))
    # Connected components, built here in the template's order: grandalf's own `Graph` collects
    # a component's edges in a set, whose order (and so the layout) would change between runs.
    group = {key: key for key in nodes}

    def find(key: str) -> str:
        while group[key] != key:
            key = group[key]
        return key

    for _, upstream, downstream, *_ in edges:
        group[find(downstream)] = find(upstream)
    members: dict[str, list[str]] = {}
    for key in nodes:
        members.setdefault(find(key), []).append(key)
    components = [
        graph_core(
            [vertices[key] for key in keys],
            [edge for edge, upstream, *_ in edges if find(upstream) == root],
        )
        for root, keys in members.items()
    ]

    # lay out each connected component, then stack the components top to bottom
    placed: dict[str, tuple[float, float]] = {}  # key -> (left, top) in the final picture
    routes: dict[int, list[tuple[float, float]]] = {}
    offset_y = 0.0
    width = 0.0
    order = {key: index for index, key in enumerate(nodes)}
    for component in components:
        layout = SugiyamaLayout(component)
        layout.xspace, layout.yspace = SIBLING_GAP, LAYER_GAP
        roots = sorted((v for v in component.sV if not v.e_in()), key=lambda v: order[v.data])
        layout.init_all(roots=roots, optimize=False)
        layout.draw(N=3)
        # grandalf's frame is top-down: turn it so layers run left to right
        boxes = {v.data: v.view for v in component.sV}
        lefts = [b.xy[1] - b.h / 2 for b in boxes.values()]
        tops = [b.xy[0] - b.w / 2 for b in boxes.values()]
        min_left, min_top = min(lefts), min(tops)
        bottom = 0.0
        for key, box in boxes.items():
            left = box.xy[1] - box.h / 2 - min_left + MARGIN
            top = box.xy[0] - box.w / 2 - min_top + MARGIN + offset_y
            placed[key] = (left, top)
            width = max(width, left + box.h + MARGIN)
            bottom = max(bottom, top + box.w)
        for edge, *_ in edges:
            if edge.v[0].data in boxes:
                points = edge.view.points or [edge.v[0].view.xy, edge.v[1].view.xy]
                routes[id(edge)] = [
                    (y - min_left + MARGIN, x - min_top + MARGIN + offset_y) for x, y in points
                ]
        offset_y = bottom + COMPONENT_GAP - MARGIN
    height = offset_y - COMPONENT_GAP + 2 * MARGIN if nodes else 2 * MARGIN

    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" '
        f'width="{_fmt(width)}" height="{_fmt(height)}" '
        f'viewBox="0 0 {_fmt(width)} {_fmt(height)}" '
        f'font-family="sans-serif" font-size="{FONT_SIZE}">',
        f"<title>{escape(definition.name or definition.key)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="8" markerHeight="8" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#546e7a"/></marker></defs>',
    ]
    for edge, upstream, downstream, solid, label in edges:
        points = _clip(routes[id(edge)], nodes, placed, upstream, downstream)
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{_fmt(x)},{_fmt(y)}" for i, (x, y) in enumerate(points)
        )
        dash = "" if solid else ' stroke-dasharray="5 4"'
        out.append(
            f'<g class="dependency" data-from={quoteattr(upstream)} '
            f"data-to={quoteattr(downstream)}>"
            f'<path d="{path}" fill="none" stroke="#546e7a" stroke-width="1.5"{dash} '
            'marker-end="url(#arrow)"/>'
        )
        if label:
            mid_x, mid_y = _middle(points)
            out.append(
                f'<text x="{_fmt(mid_x)}" y="{_fmt(mid_y - 4)}" text-anchor="middle" '
                f'font-size="11" fill="#37474f" stroke="#ffffff" stroke-width="3" '
                f'paint-order="stroke">{escape(label)}</text>'
            )
        out.append("</g>")
    for key, node in nodes.items():
        left, top = placed[key]
        style = _style(node.state)
        dash = (
            f' stroke-dasharray="{style["stroke-dasharray"]}"'
            if "stroke-dasharray" in style
            else ""
        )
        state_attr = f" data-state={quoteattr(node.state)}" if node.state else ""
        out.append(f'<g class="step" data-step={quoteattr(key)}{state_attr}>')
        out.append(
            f'<rect x="{_fmt(left)}" y="{_fmt(top)}" width="{_fmt(node.width)}" '
            f'height="{_fmt(node.height)}" rx="6" fill="{style["fill"]}" '
            f'stroke="{style["stroke"]}" stroke-width="1.5"{dash}/>'
        )
        for index, line in enumerate(node.lines):
            y = top + PADDING_Y + (index + 1) * LINE_HEIGHT - 5
            weight = ' font-weight="bold"' if index == 0 else ""
            italic = ' font-style="italic"' if index == 2 else ""
            out.append(
                f'<text x="{_fmt(left + node.width / 2)}" y="{_fmt(y)}" text-anchor="middle" '
                f'fill="{style["color"]}"{weight}{italic}>{escape(line)}</text>'
            )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _clip(
    points: list[tuple[float, float]],
    nodes: Mapping[str, _Node],
    placed: Mapping[str, tuple[float, float]],
    upstream: str,
    downstream: str,
) -> list[tuple[float, float]]:
    """An edge from the right side of its upstream box to the left side of its downstream box,
    through the route's inner points."""
    up_left, up_top = placed[upstream]
    down_left, down_top = placed[downstream]
    start = (up_left + nodes[upstream].width, up_top + nodes[upstream].height / 2)
    end = (down_left, down_top + nodes[downstream].height / 2)
    return [start, *points[1:-1], end]


def _middle(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The point half way along a polyline."""
    lengths = [
        ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5
        for (x1, y1), (x2, y2) in itertools.pairwise(points)
    ]
    remaining = sum(lengths) / 2
    for (x1, y1), (x2, y2), length in zip(points, points[1:], lengths, strict=False):
        if remaining <= length and length:
            t = remaining / length
            return x1 + (x2 - x1) * t, y1 + (y2 - y1) * t
        remaining -= length
    return points[-1]
