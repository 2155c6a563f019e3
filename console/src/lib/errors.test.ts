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
    for (const words of Object.values(ERROR_WORDS)) expect(words.length).toBeGreaterThan(5);
  });
});
