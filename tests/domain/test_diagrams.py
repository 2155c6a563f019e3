"""Pictures of the flow: the Mermaid text of a template's step graph, coloured by state."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from signoff.domain.diagrams import STATE_STYLES, mermaid, node_id
from signoff.domain.template_parsing import parse_template

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "backend" / "signoff" / "demo"


def _template(steps: list[dict]) -> dict:
    return {"key": "t", "name": "T", "kind": "approval", "steps": steps}


def _step(key: str, **more: object) -> dict:
    return {"key": key, "name": key.title(), "assignees": {"users": ["u"]}, **more}


def branching_template() -> dict:
    """Two starting steps, an `enhances` dependency and an optional one that skips."""
    return _template(
        [
            _step("security"),
            _step("legal"),
            _step("finance", depends_on=[{"step": "security", "effect": "enhances"}]),
            _step(
                "cab",
                depends_on=[
                    "legal",
                    {"step": "finance", "effect": "optional", "resolution": "skip"},
                ],
            ),
        ]
    )


def test_nodes_and_edges_follow_the_dependencies():
    definition = parse_template(branching_template())
    text = mermaid(definition)
    assert text.startswith("flowchart LR\n")
    assert "  s_security -.-> s_finance" in text
    assert "  s_legal --> s_cab" in text
    assert "  s_finance -.->|optional skip| s_cab" in text
    assert "classDef" not in text  # a template has no states


def test_an_item_is_labelled_and_coloured_by_its_step_states():
    definition = parse_template(_template([_step("a"), _step("b", depends_on=["a"])]))
    text = mermaid(definition, {"a": "approved", "b": "active"})
    assert '<i>approved</i>"]' in text and '<i>active</i>"]' in text
    assert f"  classDef approved {STATE_STYLES['approved']}" in text
    assert "  class s_a approved" in text and "  class s_b active" in text


def test_names_cannot_break_out_of_their_label():
    definition = parse_template(
        _template([{**_step("x"), "name": 'Say "hi" <script>alert(1)</script> & go'}])
    )
    (label,) = re.findall(r'\["(.*)"\]', mermaid(definition))
    assert '"' not in label and "<script>" not in label
    assert "&quot;hi&quot;" in label and "&lt;script&gt;" in label


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.from_regex(r"[a-z][a-z0-9_.-]{0,6}", fullmatch=True), min_size=1, max_size=8, unique=True
    ),
    st.data(),
)
def test_every_step_is_one_node_and_every_dependency_one_edge(keys, data):
    steps = []
    for index, key in enumerate(keys):
        upstream = data.draw(st.lists(st.sampled_from(keys[:index]), unique=True)) if index else []
        steps.append(_step(key, depends_on=upstream))
    definition = parse_template(_template(steps))
    states = {k: data.draw(st.sampled_from(sorted(STATE_STYLES))) for k in keys}
    lines = mermaid(definition, states).splitlines()
    nodes = [line.split("[", 1)[0].strip() for line in lines if '["' in line]
    assert sorted(nodes) == sorted(node_id(k) for k in keys)
    assert len(set(nodes)) == len(keys)  # distinct keys stay distinct ids
    edges = [line for line in lines if "-->" in line or "-.->" in line]
    assert len(edges) == sum(len(s["depends_on"]) for s in steps)
    for key in keys:
        assert any(
            line.startswith("  class ") and node_id(key) in line.split()[1].split(",")
            for line in lines
        )


def test_the_reference_page_shows_what_draw_prints_for_each_demo_template():
    page = (REPO / "docs" / "reference" / "diagrams.md").read_text()
    blocks = re.findall(r"### `([^`]+)`.*?\n\n```mermaid\n(.*?)```", page, flags=re.S)
    assert {key for key, _ in blocks} == {p.stem for p in DEMO.glob("*.yaml")}
    for key, block in blocks:
        definition = parse_template(yaml.safe_load((DEMO / f"{key}.yaml").read_text()))
        assert block == mermaid(definition), f"docs/reference/diagrams.md is stale for {key}"


def _draw(target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signoff.cli", "templates", "draw", target],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_draw_prints_a_demo_template_and_refuses_what_it_cannot_draw(tmp_path):
    drawn = _draw("partner-approval")
    assert drawn.returncode == 0, drawn.stderr
    assert "s_manager --> s_legal" in drawn.stdout

    missing = _draw("no-such-template")
    assert missing.returncode == 1
    assert "no template file 'no-such-template'" in missing.stderr
    assert "Traceback" not in missing.stderr

    broken = tmp_path / "broken.yaml"
    broken.write_text("key: k\nname: K\nkind: approval\nsteps: []\n")
    refused = _draw(str(broken))
    assert refused.returncode == 1
    assert "not a valid template" in refused.stderr and "steps" in refused.stderr
    assert "Traceback" not in refused.stderr
