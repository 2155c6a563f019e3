import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { ErrorList } from "./ErrorList";

describe("ErrorList", () => {
  it("shows each typed error in words as an alert", () => {
    render(<ErrorList errors={[{ code: "ALREADY_DECIDED", message: "step review is APPROVED" }, "offline"]} />);
    const alert = screen.getByRole("alert");
    expect(alert.textContent).toContain("This step was already decided.");
    expect(alert.textContent).toContain("offline");
    expect(alert.querySelector("[data-code=ALREADY_DECIDED]")).not.toBeNull();
  });

  it("renders nothing without errors", () => {
    const { container } = render(<ErrorList errors={[]} />);
    expect(container.innerHTML).toBe("");
  });
});
