"""Breaking changes against the last released schema are refused unless deprecated first or
announced in CHANGELOG's Unreleased section (`signoff schema check`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from signoff.api.schema_compat import compare_schemas, unreleased_section

ROOT = Path(__file__).resolve().parents[1]

RELEASED = """
directive @audited(reason: String) on FIELD_DEFINITION

enum Outcome { APPROVED REJECTED LEGACY @deprecated(reason: "gone soon") }
union Subject = Item | Step
type Item { id: ID! }
type Step { id: ID! }
type Gone { id: ID! }
input DecideInput { stepId: ID! }
type Query {
  item(id: ID!, legacyFlag: Boolean): Item
  items(first: Int): [Item!]!
  old: String @deprecated(reason: "use item")
  oldWithArg(arg: Int @deprecated(reason: "unused")): String
  outcome: Outcome
  subject: Subject
  gone: Gone
  decide(input: DecideInput): Boolean
}
"""

# Each change: (released -> current replacement, coordinate the check must name).
CHANGES = [
    ("  items(first: Int): [Item!]!\n", "", "Query.items"),
    ("items(first: Int): [Item!]!", "items(first: Int): Int", "Query.items"),
    ("item(id: ID!, legacyFlag: Boolean)", "item(id: ID!)", "Query.item(legacyFlag:)"),
    ("legacyFlag: Boolean)", "legacyFlag: Int)", "Query.item(legacyFlag:)"),
    ("legacyFlag: Boolean)", "legacyFlag: Boolean, must: Int!)", "Query.item(must:)"),
    ("enum Outcome { APPROVED REJECTED", "enum Outcome { APPROVED", "Outcome.REJECTED"),
    ("{ stepId: ID! }", "{ stepId: ID! reason: String! }", "DecideInput.reason"),
    ("union Subject = Item | Step", "union Subject = Item", "Subject"),
    ("directive @audited(reason: String) on FIELD_DEFINITION\n", "", "@audited"),
]


def current_from(old: str, new: str) -> str:
    assert old in RELEASED
    return RELEASED.replace(old, new, 1)


@pytest.mark.parametrize(("old", "new", "coordinate"), CHANGES)
def test_an_unannounced_break_is_named_and_refused(old, new, coordinate):
    comparison = compare_schemas(RELEASED, current_from(old, new), "# Changelog\n")
    assert [b.coordinate for b in comparison.unannounced] == [coordinate]


@pytest.mark.parametrize(("old", "new", "coordinate"), CHANGES)
def test_a_break_named_under_unreleased_is_allowed(old, new, coordinate):
    field = coordinate.split("(", 1)[0]
    changelog = f"# Changelog\n\n## Unreleased\n\n### Breaking\n\n- `{field}`: what to do.\n"
    comparison = compare_schemas(RELEASED, current_from(old, new), changelog)
    assert comparison.unannounced == []
    assert [b.coordinate for b in comparison.breaks] == [coordinate]


def test_a_mention_in_a_released_version_or_of_a_longer_name_does_not_announce():
    current = current_from("  items(first: Int): [Item!]!\n", "")
    changelog = (
        "# Changelog\n\n## Unreleased\n\n- `Query.itemsByKey` is new.\n\n"
        "## 0.1.0\n\n- `Query.items` was changed.\n"
    )
    assert [b.coordinate for b in compare_schemas(RELEASED, current, changelog).unannounced] == [
        "Query.items"
    ]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('  old: String @deprecated(reason: "use item")\n', ""),
        (' LEGACY @deprecated(reason: "gone soon")', ""),
        ('(arg: Int @deprecated(reason: "unused"))', ""),
    ],
)
def test_removing_what_was_deprecated_first_is_allowed(old, new):
    comparison = compare_schemas(RELEASED, current_from(old, new), "")
    assert len(comparison.breaks) == 1
    assert comparison.breaks[0].deprecated_first
    assert comparison.unannounced == []


def test_a_change_that_breaks_nothing_passes_and_a_dangerous_one_is_reported():
    current = current_from("enum Outcome { APPROVED", "enum Outcome { APPROVED ESCALATED")
    current = current.replace("  gone: Gone\n", "  gone: Gone\n  extra(first: Int): String\n")
    comparison = compare_schemas(RELEASED, current, "")
    assert comparison.breaks == []
    assert any("ESCALATED" in d for d in comparison.dangerous)


def test_the_unreleased_section_ends_at_the_next_version():
    text = "# C\n\n## Unreleased\n\nnew things\n\n## 1.0.0\n\nold things\n"
    assert unreleased_section(text).strip() == "new things"
    assert unreleased_section("# C\n\n## 1.0.0\n\nold\n") == ""


def test_the_committed_schema_has_no_unannounced_break_against_the_released_one():
    comparison = compare_schemas(
        (ROOT / "schema.released.graphql").read_text(),
        (ROOT / "schema.graphql").read_text(),
        (ROOT / "CHANGELOG.md").read_text(),
    )
    assert comparison.unannounced == []


def run_check(tmp_path: Path, released: str, changelog: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "released.graphql").write_text(released)
    (tmp_path / "CHANGELOG.md").write_text(changelog)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "signoff.cli",
            "schema",
            "check",
            "--released",
            str(tmp_path / "released.graphql"),
            "--changelog",
            str(tmp_path / "CHANGELOG.md"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_fails_on_an_unannounced_break_and_passes_once_announced(tmp_path):
    released = (
        (ROOT / "schema.graphql")
        .read_text()
        .replace(
            "type Query {", 'type Query {\n  "Gone from today\'s schema."\n  retired: String\n', 1
        )
    )
    refused = run_check(tmp_path, released, "# Changelog\n\n## Unreleased\n")
    assert refused.returncode != 0
    assert "Query.retired" in refused.stderr

    announced = run_check(
        tmp_path, released, "# Changelog\n\n## Unreleased\n\n- `Query.retired` is removed.\n"
    )
    assert announced.returncode == 0, announced.stderr
    assert "breaking, announced in CHANGELOG: Field Query.retired was removed." in announced.stdout
