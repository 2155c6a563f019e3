// @vitest-environment node
// relay-compiler and graphql-inspector really judge the documents: a `node(id:)` query with
// fragments on WorkflowItem and Step passes, and one whose fields of one name differ in type
// on the two fails.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cwd } from "node:process";
import { afterEach, describe, expect, it } from "vitest";

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true })));

function check(document: string): { ok: boolean; output: string } {
  const dir = mkdtempSync(join(tmpdir(), "frontend-tools-"));
  dirs.push(dir);
  writeFileSync(join(dir, "doc.ts"), `const d = graphql(\`\n${document}\n\`);\n`);
  try {
    const output = execFileSync("node", ["scripts/frontend-tools.mjs", dir], { cwd: cwd(), encoding: "utf8", stdio: "pipe" });
    return { ok: true, output };
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string };
    return { ok: false, output: `${failed.stdout ?? ""}${failed.stderr ?? ""}` };
  }
}

describe("scripts/frontend-tools.mjs", () => {
  it("accepts node(id:) with fragments on an item and a step", () => {
    const result = check(`
      query Open($id: ID!) { node(id: $id) { id ...Item ...StepOf } }
      fragment Item on WorkflowItem { kind state risk version }
      fragment StepOf on Step { stepKind stepState risk version }`);
    expect(result.output).toContain("graphql-inspector validate");
    expect(result.ok).toBe(true);
  }, 120_000);

  it("refuses fields of one name with two types, naming relay-compiler", () => {
    const result = check(`
      query Clash($id: ID!) {
        node(id: $id) { ... on WorkflowItem { state } ... on Step { state: stepState } }
      }`);
    expect(result.ok).toBe(false);
    expect(result.output).toContain("relay-compiler refused");
    expect(result.output).toContain("ambiguous");
  }, 120_000);
});

// graphql-inspector diff against the released schema follows the rule of `signoff schema
// check`: a break fails unless deprecated first or announced under `## Unreleased`.
const RELEASED = `
type Query { a: String, b: Int @deprecated(reason: "use a"), c(x: Int): String }
enum Mode { ANY ALL }
`;
const CURRENT = `
type Query { a: Int, c: String }
enum Mode { ANY }
`;

function diff(changelog: string): { ok: boolean; output: string } {
  const dir = mkdtempSync(join(tmpdir(), "schema-diff-"));
  dirs.push(dir);
  writeFileSync(join(dir, "released.graphql"), RELEASED);
  writeFileSync(join(dir, "current.graphql"), CURRENT);
  writeFileSync(join(dir, "CHANGELOG.md"), changelog);
  const args = ["scripts/schema-diff.mjs", ...["released.graphql", "current.graphql", "CHANGELOG.md"].map((f) => join(dir, f))];
  try {
    return { ok: true, output: execFileSync("node", args, { cwd: cwd(), encoding: "utf8", stdio: "pipe", env: { ...process.env, SCHEMA_DIFF_VERBOSE: "1" } }) };
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string };
    return { ok: false, output: `${failed.stdout ?? ""}${failed.stderr ?? ""}` };
  }
}

describe("scripts/schema-diff.mjs", () => {
  it("refuses each unannounced break, but not the removal of what was deprecated", () => {
    const result = diff("# Changelog\n\n## Unreleased\n\n- nothing breaks\n");
    expect(result.ok).toBe(false);
    expect(result.output).toContain("Detected 3 breaking changes");
    expect(result.output).toMatch(/✖ +Field Query\.a changed type/);
    expect(result.output).toMatch(/✖ +Enum value ANY was removed|✖ +Enum value ALL was removed/);
    expect(result.output).toMatch(/✖ +Argument x: Int was removed from field Query\.c/);
    expect(result.output).toMatch(/⚠ +Field b \(deprecated\) was removed/);
  }, 120_000);

  it("passes once the Unreleased section names every coordinate, an argument by its field", () => {
    const result = diff("# Changelog\n\n## Unreleased\n\n- `Query.a` is an Int; `Mode.ALL` is gone; `Query.c` lost `x`.\n\n## 1.0\n");
    expect(result.output).toContain("announced in the changelog's Unreleased section");
    expect(result.ok).toBe(true);
  }, 120_000);

  it("does not take a released version's notes, or a longer name, as an announcement", () => {
    const result = diff("# Changelog\n\n## Unreleased\n\n- `Query.ab`, `Mode.ALLOW`, `XQuery.c`\n\n## 1.0\n\n- Query.a Mode.ALL Query.c\n");
    expect(result.ok).toBe(false);
    expect(result.output).toContain("Detected 3 breaking changes");
  }, 120_000);
});
