"""A desk for rule tests through GraphQL: templates published by an admin, items submitted and
acted on by people with the roles and groups their bearer tokens carry."""

from __future__ import annotations

from typing import Any

import pytest

ERRORS = "errors { code message field }"
ITEM_FIELDS = """
  id state version priority summary
  steps {
    id key stepState risk declaredRisk params originalParams
    expectedOutcome estimatedTime requiredPermissions
    assignees { users groups roles }
    hold { upstreams options }
    decisions { actorId outcome rule }
    impactIfModified { step outcome via }
  }
"""
SUBMIT = f"""mutation($input: SubmitItemInput!) {{
  submitItem(input: $input) {{ item {{ {ITEM_FIELDS} }} {ERRORS} }} }}"""
SAVE = f"""mutation($input: SaveTemplateInput!) {{
  saveTemplate(input: $input) {{ template {{ id }} {ERRORS} }} }}"""
ITEM = f"""query($id: ID!) {{
  item(id: $id) {{ {ITEM_FIELDS} auditEvents {{ nodes {{ action actorId data }} }} }} }}"""


def mutation(name: str, input_type: str) -> str:
    """A mutation returning the item (with ITEM_FIELDS) and its typed errors."""
    return (
        f"mutation($input: {input_type}!) {{ {name}(input: $input) "
        f"{{ item {{ {ITEM_FIELDS} }} {ERRORS} }} }}"
    )


APPROVE = mutation("approveStep", "DecideStepInput")
REJECT = mutation("rejectStep", "DecideStepInput")
REASSIGN = mutation("reassignStep", "ReassignStepInput")
MODIFY = mutation("modifyStepParams", "ModifyStepParamsInput")
REPORT = mutation("reportExecution", "ReportExecutionInput")
RESOLVE = mutation("resolveHeldStep", "ResolveHeldStepInput")

Who = tuple[str, tuple[str, ...], tuple[str, ...]]
ADMIN: Who = ("root", ("admin",), ())


class Desk:
    """One tenant: templates published by an admin, items submitted and acted on by people."""

    def __init__(self, gql: Any) -> None:
        self.gql = gql

    async def call(self, query: str, variables: dict[str, Any], who: Who) -> dict[str, Any]:
        user, roles, groups = who
        data = await self.gql.data(query, variables, as_user=user, roles=roles, groups=groups)
        return next(iter(data.values()))

    async def save(self, document: dict[str, Any]) -> dict[str, Any]:
        """saveTemplate (published) as an admin; returns the payload, errors included."""
        return await self.call(SAVE, {"input": {"definition": document, "publish": True}}, ADMIN)

    async def publish(self, document: dict[str, Any]) -> None:
        result = await self.save(document)
        assert result["errors"] == [], result["errors"]

    async def submit(self, key: str, who: Who, **extra: Any) -> dict[str, Any]:
        result = await self.call(
            SUBMIT, {"input": {"templateKey": key, "title": "t", **extra}}, who
        )
        assert result["errors"] == [], result["errors"]
        item: dict[str, Any] = result["item"]
        return item

    async def read(self, item: dict[str, Any]) -> dict[str, Any]:
        """The item as stored, with its audit events, read by an admin."""
        data = await self.gql.data(ITEM, {"id": item["id"]}, as_user="root", roles=("admin",))
        found: dict[str, Any] = data["item"]
        return found

    async def act(self, query: str, variables: dict[str, Any], who: Who) -> dict[str, Any]:
        """An action that must succeed; returns the item after it."""
        result = await self.call(query, {"input": variables}, who)
        assert result["errors"] == [], result["errors"]
        item: dict[str, Any] = result["item"]
        return item

    async def refused(
        self, item: dict[str, Any], query: str, variables: dict[str, Any], who: Who
    ) -> str:
        """An action that must be refused, and change nothing; returns its error code."""
        before = await self.read(item)
        result = await self.call(query, {"input": variables}, who)
        assert result["item"] is None and result["errors"], result
        assert await self.read(item) == before, "a refused action changed something"
        code: str = result["errors"][0]["code"]
        return code


def step_of(item: dict[str, Any], key: str) -> dict[str, Any]:
    return next(s for s in item["steps"] if s["key"] == key)


def approval(key: str, *steps: dict[str, Any], kind: str = "approval") -> dict[str, Any]:
    """A template document with `steps`."""
    return {"key": key, "name": key, "kind": kind, "steps": list(steps)}


@pytest.fixture
def desk(gql: Any, demo_templates: Any) -> Desk:
    return Desk(gql)
