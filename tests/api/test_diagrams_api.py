"""`WorkflowItem.diagram` and `Template.diagram`: the step graph as Mermaid text through GraphQL,
an item's coloured by its steps' states as they move."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from tests.api.test_partner_approval import MANAGER, decide, submit

DIAGRAM = "query($id: ID!) { item(id: $id) { diagram } }"
TEMPLATES = "{ templates { key diagram } }"
SVG = "query($id: ID!) { item(id: $id) { diagram(format: SVG) } }"
TEMPLATE_SVG = "{ templates { key diagram(format: SVG) } }"
NS = {"svg": "http://www.w3.org/2000/svg"}


def _states(picture: str) -> dict[str, str | None]:
    root = ET.fromstring(picture)
    return {
        g.get("data-step"): g.get("data-state") for g in root.iterfind("svg:g[@class='step']", NS)
    }


@pytest.fixture
def gql(gql: Any, clock: Any) -> Any:
    gql.clock = clock  # decisions advance the test's clock
    return gql


async def test_an_items_diagram_follows_its_steps(gql, demo_templates):
    item = await submit(gql)
    before = (await gql.data(DIAGRAM, {"id": item["id"]}, as_user="rita"))["item"]["diagram"]
    assert "  s_manager --> s_legal" in before
    assert "  class s_manager active" in before
    assert "  class s_legal,s_executive waiting" in before

    await decide(gql, "approveStep", item, "manager", MANAGER)
    after = (await gql.data(DIAGRAM, {"id": item["id"]}, as_user="rita"))["item"]["diagram"]
    assert "  class s_manager approved" in after
    assert "  class s_legal active" in after
    assert "  class s_executive waiting" in after


async def test_a_templates_diagram_has_no_states(gql, demo_templates):
    data = await gql.data(TEMPLATES, as_user="admin", roles=("admin",))
    drawn = {t["key"]: t["diagram"] for t in data["templates"]}
    assert "  s_legal --> s_executive" in drawn["partner-approval"]
    assert all("classDef" not in text for text in drawn.values())


async def test_an_items_svg_is_coloured_by_its_steps_as_they_move(gql, demo_templates):
    item = await submit(gql)
    before = (await gql.data(SVG, {"id": item["id"]}, as_user="rita"))["item"]["diagram"]
    assert _states(before) == {"manager": "active", "legal": "waiting", "executive": "waiting"}

    await decide(gql, "approveStep", item, "manager", MANAGER)
    after = (await gql.data(SVG, {"id": item["id"]}, as_user="rita"))["item"]["diagram"]
    assert _states(after) == {"manager": "approved", "legal": "active", "executive": "waiting"}


async def test_a_templates_svg_has_no_states(gql, demo_templates):
    data = await gql.data(TEMPLATE_SVG, as_user="admin", roles=("admin",))
    drawn = {t["key"]: _states(t["diagram"]) for t in data["templates"]}
    assert drawn["partner-approval"] == dict.fromkeys(["manager", "legal", "executive"])
