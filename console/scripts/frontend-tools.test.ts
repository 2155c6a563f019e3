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
