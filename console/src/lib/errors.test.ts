import { readFileSync } from "node:fs";
import { join } from "node:path";
import { cwd } from "node:process";
import { describe, expect, it } from "vitest";
import { describeError, ERROR_WORDS } from "./errors";

describe("describeError", () => {
  it("puts the code in words, then the server's message and the problems", () => {
    const text = describeError({
      code: "INVALID_INPUT",
      message: "payload is invalid",
      field: "payload",
      problems: [{ path: "rollback_plan", message: "required" }],
    });
    expect(text).toBe("Something in the form is not valid. (payload) payload is invalid rollback_plan: required");
  });

  it("has words for every code of the schema", () => {
    const schema = readFileSync(join(cwd(), "..", "schema.graphql"), "utf8");
    const block = schema.match(/enum ErrorCode \{([^}]*)\}/)?.[1] ?? "";
    const codes = [...block.matchAll(/^\s+([A-Z_]+)$/gm)].map((m) => m[1]);
    expect(codes.length).toBeGreaterThan(10);
    expect(codes.filter((code) => !(code in ERROR_WORDS))).toEqual([]);
  });

  it("names a code it has no words for", () => {
    expect(describeError({ code: "NEW_CODE" as never, message: "" })).toBe("The request was refused (NEW_CODE).");
  });
});
