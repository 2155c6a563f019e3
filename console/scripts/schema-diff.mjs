// graphql-inspector diff of the schema against the last released one: `node
// scripts/schema-diff.mjs [RELEASED [CURRENT [CHANGELOG]]]` (default: ../schema.released.graphql,
// ../schema.graphql, ../CHANGELOG.md) exits non-zero on a breaking change that was neither
// deprecated first nor announced in the changelog's `## Unreleased` section — what a frontend
// team's CI would run, beside `signoff schema check`, which applies the same rule with
// graphql-core (scripts/announced-breaks.cjs).
import { execFileSync } from "node:child_process";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(fileURLToPath(import.meta.url), "../..");
const [released, current, changelog] = [
  process.argv[2] ?? join(root, "..", "schema.released.graphql"),
  process.argv[3] ?? join(root, "..", "schema.graphql"),
  process.argv[4] ?? join(root, "..", "CHANGELOG.md"),
].map((path) => resolve(path));

console.log("== console: graphql-inspector diff (against the released schema)");
try {
  const output = execFileSync(
    join(root, "node_modules", ".bin", "graphql-inspector"),
    [
      "diff",
      released,
      current,
      "--rule",
      "suppressRemovalOfDeprecatedField",
      "--rule",
      join(root, "scripts", "announced-breaks.cjs"),
    ],
    { cwd: root, env: { ...process.env, SIGNOFF_CHANGELOG: changelog }, stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" },
  );
  if (process.env.SCHEMA_DIFF_VERBOSE) process.stdout.write(output);
} catch (error) {
  process.stdout.write(String(error.stdout ?? ""));
  process.stderr.write(String(error.stderr ?? ""));
  console.error("graphql-inspector diff found a breaking change that is neither deprecated first nor announced in the changelog's Unreleased section");
  process.exit(1);
}
