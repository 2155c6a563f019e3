// A graphql-inspector diff rule (`--rule scripts/announced-breaks.cjs`): a breaking change
// whose schema coordinate the `## Unreleased` section of the changelog names is reported as
// dangerous instead, with "announced" in its message. It is the rule `signoff schema check`
// applies with graphql-core (backend/signoff/api/schema_compat.py): a break is allowed when
// it is announced (`Type.field`, `Enum.VALUE`, `Input.field`, `Type`, `@directive`; an
// argument by its field) or when it removes what the released schema deprecated (graphql-
// inspector's own `suppressRemovalOfDeprecatedField`). The changelog is CHANGELOG.md at the
// repository's root, or the file SIGNOFF_CHANGELOG names.
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

/** The text of the `## Unreleased` section ("" when there is none). */
function unreleased(changelog) {
  const start = changelog.search(/^## Unreleased[ \t]*$/m);
  if (start < 0) return "";
  const rest = changelog.slice(start).split("\n").slice(1).join("\n");
  const end = rest.search(/^## /m);
  return end < 0 ? rest : rest.slice(0, end);
}

/** The coordinate a change is about: `Type.field` for a field or its argument, `Enum.VALUE`,
 * `Type`, `@directive`. */
function coordinate(path) {
  return path.split(".").slice(0, 2).join(".");
}

function escape(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Whether `announcements` name `name` (not as a part of a longer name). */
function named(name, announcements) {
  return new RegExp(`(?<![\\w.@])${escape(name)}(?!\\w)`).test(announcements);
}

module.exports = function announcedBreaks({ changes }) {
  const file = process.env.SIGNOFF_CHANGELOG || join(__dirname, "..", "..", "CHANGELOG.md");
  const announcements = unreleased(readFileSync(file, "utf8"));
  return changes.map((change) => {
    if (change.criticality.level !== "BREAKING" || !change.path) return change;
    if (!named(coordinate(change.path), announcements)) return change;
    return {
      ...change,
      message: `${change.message} (announced in the changelog's Unreleased section)`,
      criticality: { ...change.criticality, level: "DANGEROUS" },
    };
  });
};
