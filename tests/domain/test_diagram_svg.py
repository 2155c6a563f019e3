"""Pictures of the flow as SVG laid out on the server: a well-formed standalone document whose
boxes never overlap, whose dependencies run left to right, whose text cannot break out of it,
and which is the same for the same input."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from signoff.domain.diagram_svg import DiagramFormat, draw, svg
from signoff.domain.diagrams import STATE_STYLES, mermaid
from signoff.domain.template_parsing import parse_template
from tests.domain.test_diagrams import _step, _template, branching_template

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "backend" / "signoff" / "demo"
NS = {"svg": "http://www.w3.org/2000/svg"}


def _boxes(root: ET.Element) -> dict[str, tuple[float, float, float, float]]:
    """Step key -> (left, top, right, bottom) of its box."""
    boxes = {}
    for group in root.iterfind("svg:g[@class='step']", NS):
        rect = group.find("svg:rect", NS)
        assert rect is not None
        left, top = float(rect.get("x", "nan")), float(rect.get("y", "nan"))
        width, height = float(rect.get("width", "nan")), float(rect.get("height", "nan"))
        boxes[group.get("data-step", "")] = (left, top, left + width, top + height)
    return boxes


def _points(group: ET.Element) -> list[tuple[float, float]]:
    path = group.find("svg:path", NS)
    assert path is not None
    return [
        (float(x), float(y)) for x, y in re.findall(r"[ML](-?[\d.]+),(-?[\d.]+)", path.get("d", ""))
    ]


def test_a_branching_graph_is_drawn_left_to_right_and_coloured_by_state():
    definition = parse_template(branching_template())
    root = ET.fromstring(svg(definition, {"security": "approved", "cab": "skipped"}))
    boxes = _boxes(root)
    assert set(boxes) == {"security", "legal", "finance", "cab"}
    # the steps without dependencies are in the first layer, each dependency one layer on
    assert boxes["security"][0] == boxes["legal"][0] < boxes["finance"][0] < boxes["cab"][0]
    groups = {
        (g.get("data-from"), g.get("data-to")): g
        for g in root.iterfind("svg:g[@class='dependency']", NS)
    }
    assert set(groups) == {("security", "finance"), ("legal", "cab"), ("finance", "cab")}
    assert groups[("legal", "cab")].find("svg:path", NS).get("stroke-dasharray") is None
    assert groups[("security", "finance")].find("svg:path", NS).get("stroke-dasharray")
    assert groups[("finance", "cab")].findtext("svg:text", namespaces=NS) == "optional skip"
    approved = root.find("svg:g[@data-step='security']", NS)
    assert approved.get("data-state") == "approved"
    assert f"fill:{approved.find('svg:rect', NS).get('fill')}" in STATE_STYLES["approved"]
    assert root.find("svg:g[@data-step='legal']", NS).get("data-state") is None
    skipped = root.find("svg:g[@data-step='cab']/svg:rect", NS)
    assert skipped.get("stroke-dasharray") == "4 3"  # from the skipped style


def test_the_format_picks_the_drawing():
    definition = parse_template(_template([_step("a"), _step("b", depends_on=["a"])]))
    assert draw(definition) == mermaid(definition)
    assert draw(definition, {"a": "active"}, DiagramFormat.SVG) == svg(definition, {"a": "active"})


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.from_regex(r"[a-z][a-z0-9_.-]{0,6}", fullmatch=True), min_size=1, max_size=9, unique=True
    ),
    st.data(),
)
def test_any_graph_is_a_well_formed_picture_without_overlaps(keys, data):
    names = st.text(
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=24
    ).filter(lambda text: text.strip() == text and text.strip())
    steps = []
    for index, key in enumerate(keys):
        upstream = data.draw(st.lists(st.sampled_from(keys[:index]), unique=True)) if index else []
        name = data.draw(names | st.just('<a href="x">&"</a>'))
        steps.append({**_step(key, depends_on=upstream), "name": name})
    definition = parse_template(_template(steps))
    states = data.draw(
        st.dictionaries(st.sampled_from(keys), st.sampled_from(sorted(STATE_STYLES)))
    )
    text = svg(definition, states)
    assert text == svg(definition, states)  # deterministic

    root = ET.fromstring(text)  # well-formed, whatever the names
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    width, height = float(root.get("width", "0")), float(root.get("height", "0"))
    boxes = _boxes(root)
    assert set(boxes) == set(keys)
    for key, (left, top, right, bottom) in boxes.items():
        assert 0 <= left < right <= width and 0 <= top < bottom <= height, key
    ordered = sorted(boxes.items())
    for i, (a, (l1, t1, r1, b1)) in enumerate(ordered):
        for b, (l2, t2, r2, b2) in ordered[i + 1 :]:
            assert r1 <= l2 or r2 <= l1 or b1 <= t2 or b2 <= t1, f"{a} overlaps {b}"
    # each step's name is its first line of text, exactly (escaped on the way in)
    for step in steps:
        group = root.find(f"svg:g[@data-step='{step['key']}']", NS)
        assert group.findtext("svg:text", namespaces=NS) == step["name"]
        assert group.get("data-state") == states.get(step["key"])
    # one edge per dependency, from the right side of its upstream box to a box further right
    edges = list(root.iterfind("svg:g[@class='dependency']", NS))
    assert sorted((e.get("data-from"), e.get("data-to")) for e in edges) == sorted(
        (up, s["key"]) for s in steps for up in s["depends_on"]
    )
    for edge in edges:
        upstream, downstream = boxes[edge.get("data-from")], boxes[edge.get("data-to")]
        points = _points(edge)
        # coordinates are written to 0.1
        assert abs(points[0][0] - upstream[2]) <= 0.1 and abs(points[-1][0] - downstream[0]) <= 0.1
        assert upstream[2] < downstream[0]
        assert all(x1 <= x2 + 0.1 for (x1, _), (x2, _) in itertools.pairwise(points))


def test_the_reference_pictures_are_what_draw_prints_for_each_demo_template():
    folder = REPO / "docs" / "reference" / "diagrams"
    page = (REPO / "docs" / "reference" / "diagrams.md").read_text()
    assert {p.stem for p in folder.glob("*.svg")} == {p.stem for p in DEMO.glob("*.yaml")}
    for path in DEMO.glob("*.yaml"):
        definition = parse_template(yaml.safe_load(path.read_text()))
        committed = (folder / f"{path.stem}.svg").read_text()
        assert committed == svg(definition), f"run `signoff docs diagrams` ({path.stem})"
        assert f"](diagrams/{path.stem}.svg)" in page


def test_draw_prints_svg_when_asked():
    drawn = subprocess.run(
        [sys.executable, "-m", "signoff.cli", "templates", "draw", "partner-approval"]
        + ["--format", "svg"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert drawn.returncode == 0, drawn.stderr
    root = ET.fromstring(drawn.stdout)
    assert set(_boxes(root)) == {"manager", "legal", "executive"}
