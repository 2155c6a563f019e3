"""Random permission tables and random callers: the checker (`domain.permissions.allows` on the
stored table) and the API's answer always agree."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from signoff.api import ids
from signoff.domain.actors import Actor, Principal
from signoff.domain.permissions import EVERYONE, REQUESTER, SPEC, Permission, allows
from signoff.services import items as item_services
from signoff.services import permissions as permission_services
from signoff.services import templates as template_services

ROLES = ["admin", "auditor", "legal", "ops", "executor", "x"]
TEMPLATES = ["k1", "k2"]
QUERIES = {
    Permission.ADMINISTER_TIMERS: "{ overdueSteps { nodes { stepId } } }",
    Permission.ADMINISTER_NOTIFICATIONS: "{ deadLetters { nodes { id } } }",
    Permission.ADMINISTER_RETENTION: "{ retentionPolicies { days } }",
    Permission.ADMINISTER_REDACTION: "{ redactionRules { path } }",
    Permission.EXPORT_AUDIT: "{ verifyAuditChain { ok } }",
    Permission.ADMINISTER_PERMISSIONS: "{ permissions { permission } }",
}
TABLED = [*QUERIES, Permission.SUBMIT, Permission.EXECUTE]
_PUBLISHED: set[str] = set()


def grantee_sets(permission: Permission) -> st.SearchStrategy[frozenset[str] | None]:
    pool = ROLES + [EVERYONE] + ([REQUESTER] if SPEC[permission].per_template else [])
    return st.none() | st.frozensets(st.sampled_from(pool), max_size=3)


@st.composite
def tables(draw: Any) -> dict[tuple[str, Permission], frozenset[str] | None]:
    """Per permission, the tenant's grant and (item permissions) each template's: a set of
    grantees, or None for none stored."""
    table = {}
    for permission in TABLED:
        table[("", permission)] = draw(grantee_sets(permission))
        if SPEC[permission].per_template:
            for key in TEMPLATES:
                table[(key, permission)] = draw(grantee_sets(permission))
    return table


def outcome(body: dict[str, Any]) -> str:
    if body.get("errors"):
        return str(body["errors"][0]["extensions"]["code"])
    for value in body["data"].values():
        if isinstance(value, dict) and value.get("errors"):
            return str(value["errors"][0]["code"])
    return "ok"


async def _publish(services: Any, tenant: str) -> None:
    admin = Actor.operator(tenant)
    for key in TEMPLATES:
        await template_services.save_template(
            admin,
            services,
            {
                "key": key,
                "name": key,
                "kind": "plan",
                "action_risks": {"run": "low"},
                "steps": [{"key": "s", "assignees": {"users": ["sam"]}}],
            },
            publish=True,
        )


async def _set(services: Any, tenant: str, table: dict[Any, frozenset[str] | None]) -> None:
    operator = Actor.operator(tenant)
    for (key, permission), granted in table.items():
        await permission_services.set_permission(
            operator,
            services,
            permission_services.SetPermissionInput(
                permission, None if granted is None else tuple(granted), key or None
            ),
        )


@pytest.mark.timeout(600)
@hsettings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    table=tables(),
    user=st.sampled_from(["rita", "u1"]),
    roles=st.frozensets(st.sampled_from(ROLES), max_size=3),
    permission=st.sampled_from(TABLED),
    template=st.sampled_from(TEMPLATES),
)
async def test_the_checker_and_the_api_agree_on_random_tables_and_callers(
    gql, services, tenant, table, user, roles, permission, template
):
    if tenant not in _PUBLISHED:
        await _publish(services, tenant)
        _PUBLISHED.add(tenant)
    # the defaults while setting up an item to report on (its requester is rita)
    await _set(services, tenant, {k: None for k in table})
    item = None
    if permission is Permission.EXECUTE:
        rita = Actor(Principal("rita", tenant))
        view = await item_services.submit_item(
            rita,
            services,
            item_services.SubmitItemInput(
                template_key=template, title="t", plan={"steps": [{"key": "x", "action": "run"}]}
            ),
        )
        item = await item_services.decide_step(
            Actor(Principal("sam", tenant)),
            services,
            item_services.DecideStepInput(view.steps[0].id, item_services.Outcome.APPROVE),
        )
    await _set(services, tenant, table)
    grants = await permission_services.grants_of(tenant, services)
    caller = Principal(user, tenant, roles)
    token = gql.token(user, *sorted(roles))
    if permission in QUERIES:
        body = (await gql.run(QUERIES[permission], token=token)).json()
        expected = allows(grants, caller, permission)
    elif permission is Permission.SUBMIT:
        body = (
            await gql.run(
                "mutation($i: SubmitItemInput!) { submitItem(input: $i) { errors { code } } }",
                {
                    "i": {
                        "templateKey": template,
                        "title": "t",
                        "plan": {"steps": [{"key": "x", "action": "run"}]},
                    }
                },
                token=token,
            )
        ).json()
        expected = allows(grants, caller, permission, template_key=template)
    else:
        assert item is not None
        body = (
            await gql.run(
                "mutation($i: ReportExecutionInput!) { reportExecution(input: $i) "
                "{ errors { code } } }",
                {"i": {"stepId": ids.encode("Step", item.steps[0].id), "status": "RUNNING"}},
                token=token,
            )
        ).json()
        expected = allows(grants, caller, permission, template_key=template, requester="rita")
    event("allowed" if expected else "refused")
    assert outcome(body) == ("ok" if expected else "FORBIDDEN"), (body, grants)
