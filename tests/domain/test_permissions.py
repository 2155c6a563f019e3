"""The permission table's rules, on pure data: which grant applies, who a grantee names, what
may be stored, and the generated reference."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signoff.domain.actors import Principal
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.permissions import (
    EVERYONE,
    OPERATOR_PERMISSIONS,
    REQUESTER,
    SPEC,
    SPECS,
    Grant,
    Grants,
    Permission,
    Source,
    allows,
    check_grantees,
    check_template_scope,
    default_grantees,
    render_markdown,
)

REPO = Path(__file__).resolve().parents[2]
ITEM = [p for p in Permission if SPEC[p].per_template]
TENANT_WIDE = [p for p in Permission if not SPEC[p].per_template]


def who(user: str = "u", *roles: str, operator: bool = False) -> Principal:
    return Principal(user, "t", frozenset(roles), operator=operator)


def test_every_permission_has_a_spec_and_the_reference_is_generated_from_them():
    assert [s.permission for s in SPECS] == list(Permission)
    doc = REPO / "docs" / "reference" / "permissions.md"
    assert doc.read_text() == render_markdown(), (
        "docs/reference/permissions.md is stale: run `signoff docs permissions`"
    )


def test_defaults_come_from_the_role_settings():
    table = default_grantees(
        {"admin_roles": ["boss"], "override_roles": ["ov"], "auditor_roles": ["aud"]}
    )
    assert table[Permission.ADMINISTER_TEMPLATES] == {"boss"}
    assert table[Permission.OVERRIDE] == {"ov"}
    assert table[Permission.EXPORT_AUDIT] == {"aud", "boss"}
    assert table[Permission.LEGAL_HOLD] == frozenset()  # no such setting given: nobody
    assert table[Permission.SUBMIT] == {EVERYONE}
    assert table[Permission.EXECUTE] == {REQUESTER}


def test_a_template_grant_replaces_the_tenants_which_replaces_the_default():
    defaults = {Permission.EXECUTE: frozenset({REQUESTER})}
    grants = Grants(defaults)
    assert grants.lookup(Permission.EXECUTE, "k") == ({REQUESTER}, Source.DEFAULT)
    grants = Grants(defaults, (Grant(Permission.EXECUTE, frozenset({"ops"})),))
    assert grants.lookup(Permission.EXECUTE, "k") == ({"ops"}, Source.TENANT)
    grants = Grants(
        defaults,
        (
            Grant(Permission.EXECUTE, frozenset({"ops"})),
            Grant(Permission.EXECUTE, frozenset(), "k"),
        ),
    )
    assert grants.lookup(Permission.EXECUTE, "k") == (frozenset(), Source.TEMPLATE)
    assert grants.lookup(Permission.EXECUTE, "other") == ({"ops"}, Source.TENANT)
    assert grants.lookup(Permission.EXECUTE) == ({"ops"}, Source.TENANT)


def test_a_template_grant_of_a_tenant_wide_permission_is_never_applied():
    grants = Grants(
        {Permission.EXPORT_AUDIT: frozenset({"aud"})},
        (Grant(Permission.EXPORT_AUDIT, frozenset({"x"}), "k"),),
    )
    assert grants.grantees(Permission.EXPORT_AUDIT, "k") == {"aud"}


def test_grantees_name_roles_everyone_and_the_requester():
    grants = Grants({Permission.EXECUTE: frozenset({REQUESTER, "ops"})})
    assert allows(grants, who("rita"), Permission.EXECUTE, requester="rita")
    assert not allows(grants, who("mallory", "executor"), Permission.EXECUTE, requester="rita")
    assert allows(grants, who("otto", "ops"), Permission.EXECUTE, requester="rita")
    # without an item there is no requester to be
    assert not allows(grants, who("rita"), Permission.EXECUTE)
    everyone = Grants({Permission.SUBMIT: frozenset({EVERYONE})})
    assert allows(everyone, who("anyone"), Permission.SUBMIT)
    assert not allows(Grants(), who("anyone", "admin"), Permission.SUBMIT)


def test_the_operator_holds_the_administrative_permissions_only():
    operator = who("cli", operator=True)
    for permission in Permission:
        assert allows(Grants(), operator, permission) == (permission in OPERATOR_PERMISSIONS)
    assert Permission.ADMINISTER_PERMISSIONS in OPERATOR_PERMISSIONS
    assert not {Permission.DECIDE, Permission.OVERRIDE, Permission.EXECUTE} & OPERATOR_PERMISSIONS


@pytest.mark.parametrize(
    ("values", "permission"),
    [
        (["has space"], Permission.SUBMIT),
        ([""], Permission.SUBMIT),
        (["x" * 101], Permission.SUBMIT),
        (["r"] * 51, Permission.SUBMIT),
        ([REQUESTER], Permission.EXPORT_AUDIT),
        (["nul\x00"], Permission.SUBMIT),
    ],
)
def test_bad_grantees_are_invalid_input(values, permission):
    with pytest.raises(DomainError) as refused:
        check_grantees(values, permission)
    assert refused.value.code is ErrorCode.INVALID_INPUT
    assert refused.value.field == "grantees"


def test_good_grantees_are_kept():
    assert check_grantees(["ops", "team:sre", EVERYONE, REQUESTER], Permission.EXECUTE) == {
        "ops",
        "team:sre",
        EVERYONE,
        REQUESTER,
    }
    assert check_template_scope(Permission.EXECUTE, " k ") == "k"
    with pytest.raises(DomainError) as refused:
        check_template_scope(Permission.EXPORT_AUDIT, "k")
    assert refused.value.field == "templateKey"


grantee = st.sampled_from(["a", "b", "c", EVERYONE, REQUESTER])
stored = st.lists(
    st.builds(
        Grant,
        st.sampled_from(list(Permission)),
        st.frozensets(grantee, max_size=3),
        st.sampled_from(["", "k1", "k2"]),
    ),
    max_size=8,
    unique_by=lambda g: (g.permission, g.template_key),
)


@given(
    grants=stored,
    roles=st.frozensets(st.sampled_from(["a", "b", "c"])),
    extra=st.sampled_from(["a", "b", "c"]),
    permission=st.sampled_from(list(Permission)),
    template=st.sampled_from([None, "k1", "k2", "k3"]),
    user=st.sampled_from(["rita", "u"]),
)
def test_more_roles_never_take_a_permission_away_and_the_rule_is_the_table(
    grants, roles, extra, permission, template, user
):
    table = Grants({}, tuple(grants))
    principal = Principal(user, "t", roles)
    granted = allows(table, principal, permission, template_key=template, requester="rita")
    wider = Principal(user, "t", roles | {extra})
    assert not granted or allows(table, wider, permission, template_key=template, requester="rita")
    # the rule, restated: the template's row (item permissions), else the tenant's, else none
    rows = {(g.template_key, g.permission): g.grantees for g in grants}
    key = template if template and SPEC[permission].per_template else None
    names = rows.get((key, permission)) if key and (key, permission) in rows else None
    if names is None:
        names = rows.get(("", permission), frozenset())
    expected = EVERYONE in names or (REQUESTER in names and user == "rita") or bool(names & roles)
    assert granted == expected
