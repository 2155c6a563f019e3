"""Permissions as data through GraphQL: the self-claimed executor finding of issue #12, the
table an admin reads and sets (audited, idempotent, validated), templates narrowing and
widening the tenant's grants, and the operator's command line."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from signoff.domain.actors import Actor
from signoff.services import permissions as permission_services
from tests.api.conftest import APPROVE, REPORT, Who, approval, step_of

SET = """mutation($i: SetPermissionInput!) { setPermission(input: $i) {
  grant { permission grantees source templateKey perTemplate } errors { code field } } }"""
TABLE = """query($key: String) { permissions(templateKey: $key) {
  permission grantees source templateKey perTemplate } }"""
ADMIN: Who = ("root", ("admin",), ())


async def _approved_plan(desk: Any, key: str, agent: Who) -> dict[str, Any]:
    await desk.publish(
        {
            "key": key,
            "name": key,
            "kind": "plan",
            "action_risks": {"export": "medium"},
            "steps": [{"key": "plan-step", "assignees": {"users": ["sam"]}, "max_attempts": 2}],
        }
    )
    item = await desk.submit(key, agent, plan={"steps": [{"key": "x", "action": "export"}]})
    return await desk.act(APPROVE, {"stepId": step_of(item, "x")["id"]}, ("sam", (), ()))


async def test_a_self_claimed_executor_role_does_not_report_execution_of_anyones_item(desk):
    # Issue #12: a token claiming the role `executor` (a name nobody configured) reported
    # execution of any item, because the name was hard-coded.
    item = await _approved_plan(desk, "deploy", ("agent", (), ()))
    x = step_of(item, "x")["id"]
    mallory: Who = ("mallory", ("executor",), ())
    code = await desk.refused(item, REPORT, {"stepId": x, "status": "RUNNING"}, mallory)
    assert code == "FORBIDDEN"
    # the requester (the agent that submitted the plan) reports, as before
    item = await desk.act(REPORT, {"stepId": x, "status": "RUNNING"}, ("agent", (), ()))
    assert step_of(item, "x")["stepState"] == "RUNNING"


async def test_an_admin_grants_execute_to_a_role_for_one_template_and_it_is_audited(desk, gql):
    result = await desk.call(
        SET,
        {
            "i": {
                "permission": "EXECUTE",
                "grantees": ["deployer", "@requester"],
                "templateKey": "deploy",
                "reason": "the deploy bot reports for everyone",
            }
        },
        ADMIN,
    )
    assert result["errors"] == []
    assert result["grant"] == {
        "permission": "EXECUTE",
        "grantees": ["@requester", "deployer"],
        "source": "TEMPLATE",
        "templateKey": "deploy",
        "perTemplate": True,
    }
    item = await _approved_plan(desk, "deploy", ("agent", (), ()))
    x = step_of(item, "x")["id"]
    # a role granted on this template reports; the same role on another template does not
    item = await desk.act(REPORT, {"stepId": x, "status": "RUNNING"}, ("bot", ("deployer",), ()))
    assert step_of(item, "x")["stepState"] == "RUNNING"
    other = await _approved_plan(desk, "other", ("agent", (), ()))
    code = await desk.refused(
        other,
        REPORT,
        {"stepId": step_of(other, "x")["id"], "status": "RUNNING"},
        ("bot", ("deployer",), ()),
    )
    assert code == "FORBIDDEN"
    # the change is in the tenant's audit trail, with what was there before
    events = await _tenant_events(gql)
    change = next(e for e in events if e["action"] == "permission.set")
    assert change["actorId"] == "root"
    assert change["reason"] == "the deploy bot reports for everyone"
    assert change["data"] == {
        "permission": "execute",
        "template_key": "deploy",
        "before": None,
        "after": ["@requester", "deployer"],
    }


async def _tenant_events(gql: Any) -> list[dict[str, Any]]:
    from signoff.db import sql
    from signoff.services import scopes

    with scopes.for_tenant(gql.tenant):
        rows = await sql.fetch(
            "SELECT action, actor_id, reason, data FROM audit_event WHERE tenant_id = $1 "
            "AND item_id IS NULL ORDER BY seq",
            gql.tenant,
        )
    return [
        {
            "action": r["action"],
            "actorId": r["actor_id"],
            "reason": r["reason"],
            "data": sql.loads(r["data"]),
        }
        for r in rows
    ]


async def test_a_template_grant_replaces_the_tenants_and_a_reset_restores_it(desk):
    def entry(table: list[dict[str, Any]], permission: str) -> dict[str, Any]:
        return next(e for e in table if e["permission"] == permission)

    table = (await desk.gql.data(TABLE, {"key": "deploy"}, as_user="root", roles=("admin",)))[
        "permissions"
    ]
    assert entry(table, "OVERRIDE")["source"] == "DEFAULT"
    assert entry(table, "SUBMIT")["grantees"] == ["*"]
    # tenant-wide first, then the template narrows it
    await desk.call(SET, {"i": {"permission": "SUBMIT", "grantees": ["staff"]}}, ADMIN)
    await desk.call(
        SET, {"i": {"permission": "SUBMIT", "grantees": [], "templateKey": "deploy"}}, ADMIN
    )
    table = (await desk.gql.data(TABLE, {"key": "deploy"}, as_user="root", roles=("admin",)))[
        "permissions"
    ]
    assert entry(table, "SUBMIT") == {
        "permission": "SUBMIT",
        "grantees": [],
        "source": "TEMPLATE",
        "templateKey": "deploy",
        "perTemplate": True,
    }
    # tenant-wide permissions are never per template
    assert entry(table, "EXPORT_AUDIT")["templateKey"] is None
    await desk.publish(approval("deploy", {"key": "s", "assignees": {"users": ["sam"]}}))
    refused = await desk.call(
        "mutation($i: SubmitItemInput!) { submitItem(input: $i) { errors { code } } }",
        {"i": {"templateKey": "deploy", "title": "t"}},
        ("sid", ("staff",), ()),
    )
    assert refused["errors"] == [{"code": "FORBIDDEN"}]
    # resetting the template's grant brings back the tenant's
    reset = await desk.call(
        SET, {"i": {"permission": "SUBMIT", "grantees": None, "templateKey": "deploy"}}, ADMIN
    )
    assert reset["grant"]["source"] == "TENANT"
    assert reset["grant"]["grantees"] == ["staff"]
    await desk.submit("deploy", ("sid", ("staff",), ()))


async def test_bad_grants_are_invalid_input_and_change_nothing(desk):
    cases = [
        ({"permission": "SUBMIT", "grantees": ["bad role!"]}, "grantees"),
        ({"permission": "SUBMIT", "grantees": ["x"] * 51}, "grantees"),
        ({"permission": "EXPORT_AUDIT", "grantees": ["@requester"]}, "grantees"),
        (
            {"permission": "EXPORT_AUDIT", "grantees": ["auditor"], "templateKey": "k"},
            "templateKey",
        ),
    ]
    for given, field in cases:
        result = await desk.call(SET, {"i": given}, ADMIN)
        assert result["grant"] is None
        assert result["errors"] == [{"code": "INVALID_INPUT", "field": field}], given
    table = (await desk.gql.data(TABLE, {}, as_user="root", roles=("admin",)))["permissions"]
    assert {e["source"] for e in table} == {"DEFAULT"}


async def test_setting_a_permission_is_idempotent_by_key(desk, gql):
    given = {"permission": "LEGAL_HOLD", "grantees": ["legal"], "guards": {"idempotencyKey": "k1"}}
    first = await desk.call(SET, {"i": given}, ADMIN)
    second = await desk.call(SET, {"i": given}, ADMIN)
    assert first == second and first["errors"] == []
    assert [e["action"] for e in await _tenant_events(gql)].count("permission.set") == 1
    reused = await desk.call(SET, {"i": {**given, "grantees": ["other"]}}, ADMIN)
    assert reused["errors"] == [
        {"code": "IDEMPOTENCY_KEY_REUSED", "field": "guards.idempotencyKey"}
    ]


async def test_an_admin_who_takes_the_permission_from_themselves_is_locked_out_not_the_operator(
    desk, services, gql
):
    result = await desk.call(
        SET, {"i": {"permission": "ADMINISTER_PERMISSIONS", "grantees": []}}, ADMIN
    )
    assert result["errors"] == []
    again = await desk.call(
        SET, {"i": {"permission": "ADMINISTER_PERMISSIONS", "grantees": ["admin"]}}, ADMIN
    )
    assert again["errors"] == [{"code": "FORBIDDEN", "field": None}]
    # the operator (command line) restores it
    await permission_services.set_permission(
        Actor.operator(gql.tenant),
        services,
        permission_services.SetPermissionInput(
            permission_services.Permission.ADMINISTER_PERMISSIONS, None
        ),
    )
    again = await desk.call(
        SET, {"i": {"permission": "ADMINISTER_PERMISSIONS", "grantees": ["admin"]}}, ADMIN
    )
    assert again["errors"] == []


def test_the_command_line_sets_and_shows_a_tenants_permissions(settings, tenant):
    env = {
        "SIGNOFF_ENVIRONMENT": "development",
        "SIGNOFF_DATABASE_URL": settings.database_url,
        "SIGNOFF_REDIS_URL": settings.redis_url,
        "SIGNOFF_JWT_SECRET": settings.jwt_secret,
        "SIGNOFF_TENANTS_ON_FIRST_USE": "true",
        "PATH": "/usr/bin:/bin",
    }
    signoff = [sys.executable, "-m", "signoff.cli", "permissions"]
    done = subprocess.run(
        [*signoff, "set", "--tenant", tenant, "--permission", "execute"]
        + ["--grantee", "deployer", "--template", "deploy", "--reason", "bot"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "execute\tdeployer\ttemplate" in done.stdout.splitlines()
    shown = subprocess.run(
        [*signoff, "show", "--tenant", tenant],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "execute\t@requester\tdefault" in shown.stdout.splitlines()
    bad = subprocess.run(
        [*signoff, "set", "--tenant", tenant, "--permission", "export_audit", "--template", "k"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "INVALID_INPUT" in bad.stderr
