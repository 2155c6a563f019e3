"""Retention through GraphQL and the command line: policies, legal holds, what was done."""

from __future__ import annotations

from datetime import timedelta

from signoff.services import retention as retention_services
from tests.realtime.conftest import global_id
from tests.retention.conftest import decided_item
from tests.test_cli import signoff

SET = """mutation($input: SetRetentionPolicyInput!) {
  setRetentionPolicy(input: $input) {
    policy { templateKey days action }
    errors { code field }
  }
}"""
POLICIES = "{ retentionPolicies { templateKey days action } }"
HOLD = """mutation($input: LegalHoldInput!) {
  placeLegalHold(input: $input) { hold { itemId reason placedBy } errors { code field } }
}"""
RELEASE = """mutation($input: LegalHoldInput!) {
  releaseLegalHold(input: $input) { hold { reason placedBy } errors { code } }
}"""
STATE = """query($id: ID!) {
  legalHold(itemId: $id) { reason placedBy }
  itemRetention(itemId: $id) { action templateKey days payloadSha256 }
  item(id: $id) { payload version }
}"""


async def test_policies_and_holds_through_graphql(gql, services, clock, tenant, demo_templates):
    admin = {"as_user": "ada", "roles": ("admin",)}
    refused = await gql.data(SET, {"input": {"days": 30, "action": "PURGE"}}, as_user="dave")
    assert refused["setRetentionPolicy"] == {
        "policy": None,
        "errors": [{"code": "FORBIDDEN", "field": None}],
    }
    bad = await gql.data(SET, {"input": {"days": 0, "action": "PURGE"}}, **admin)
    assert bad["setRetentionPolicy"]["errors"] == [{"code": "INVALID_INPUT", "field": "days"}]
    done = await gql.data(
        SET, {"input": {"days": 30, "action": "REDACT", "templateKey": "change-approval"}}, **admin
    )
    assert done["setRetentionPolicy"] == {
        "policy": {"templateKey": "change-approval", "days": 30, "action": "REDACT"},
        "errors": [],
    }
    assert (await gql.data(POLICIES, **admin))["retentionPolicies"] == [
        {"templateKey": "change-approval", "days": 30, "action": "REDACT"}
    ]

    view = await decided_item(services, tenant)
    item_id = global_id("WorkflowItem", view.id)
    legal = {"as_user": "lena", "roles": ("legal",)}
    not_allowed = await gql.data(
        HOLD, {"input": {"itemId": item_id, "reason": "x"}}, as_user="dave"
    )
    assert not_allowed["placeLegalHold"]["errors"] == [{"code": "FORBIDDEN", "field": None}]
    bad_id = await gql.data(HOLD, {"input": {"itemId": "nope", "reason": "x"}}, **legal)
    assert bad_id["placeLegalHold"]["errors"][0]["code"] == "INVALID_INPUT"
    placed = await gql.data(
        HOLD,
        {"input": {"itemId": item_id, "reason": "case 7", "guards": {"idempotencyKey": "h"}}},
        **legal,
    )
    assert placed["placeLegalHold"] == {
        "hold": {"itemId": item_id, "reason": "case 7", "placedBy": "lena"},
        "errors": [],
    }
    state = await gql.data(STATE, {"id": item_id}, **legal)
    assert state["legalHold"] == {"reason": "case 7", "placedBy": "lena"}
    assert (state["item"], state["itemRetention"]) == (None, None)  # lena may not read it
    # Holds are shown to legal hold roles only.
    requester = await gql.data(STATE, {"id": item_id}, as_user="dave")
    assert requester["legalHold"] is None

    clock.advance(timedelta(days=31))
    assert (await retention_services.apply_retention(services, tenant)).applied == []
    released = await gql.data(RELEASE, {"input": {"itemId": item_id, "reason": "closed"}}, **legal)
    assert released["releaseLegalHold"]["hold"] == {"reason": "case 7", "placedBy": "lena"}
    assert (await retention_services.apply_retention(services, tenant)).applied == [view.id]
    after = await gql.data(STATE, {"id": item_id}, as_user="dave")
    assert after["itemRetention"]["action"] == "REDACT"
    assert after["itemRetention"]["templateKey"] == "change-approval"
    assert all(v.startswith("sha256:") for v in after["item"]["payload"].values())


def test_the_command_line_sets_lists_and_runs(settings, tenant):
    env = {
        "SIGNOFF_DATABASE_URL": settings.database_url,
        "SIGNOFF_REDIS_URL": settings.redis_url,
        "SIGNOFF_EVIDENCE_LOCAL_DIR": settings.evidence_local_dir,
        # the test's tenant is invented, as the test deployment allows
        "SIGNOFF_TENANTS_ON_FIRST_USE": "true",
    }
    result = signoff(
        "retention", "set", "--tenant", tenant, "--days", "90", "--action", "purge", **env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(default): purge after 90 days"
    result = signoff(
        "retention", "set", "--tenant", tenant, "--days", "0", "--action", "purge", **env
    )
    assert result.returncode != 0
    assert "INVALID_INPUT" in result.stderr
    result = signoff("retention", "list", **env)
    assert result.returncode != 0 and "--tenant" in result.stderr
    result = signoff("retention", "run", "--tenant", tenant, **env)
    assert result.returncode == 0, result.stderr
    assert "content removed from 0 items" in result.stdout
