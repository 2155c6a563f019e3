import { describe, expect, it } from "vitest";
import type { InboxItemFieldsFragment } from "../gql/graphql";
import { appendPage, applyChange, matchesFilter, type InboxChangeLike, type InboxView } from "./inbox";

const item = (id: string, overrides: Partial<InboxItemFieldsFragment> = {}): InboxItemFieldsFragment => ({
  id,
  title: `Item ${id}`,
  kind: "APPROVAL",
  state: "PENDING",
  priority: 0,
  risk: "MEDIUM",
  createdAt: "2026-11-29T10:00:00+00:00",
  version: 1,
  requester: { userId: "alice", displayName: "Alice" },
  template: { key: "change-approval", name: "Change approval" },
  steps: [{ id: `${id}-s`, stepState: "ACTIVE", dueAt: "2026-11-29T18:00:00+00:00" }],
  ...overrides,
});

const empty: InboxView = { rows: [], lastSeq: 0 };
const entered = (seq: number, id: string): InboxChangeLike => ({ seq, kind: "ENTERED", itemId: id, item: item(id) });
const left = (seq: number, id: string): InboxChangeLike => ({ seq, kind: "LEFT", itemId: id, item: null });

function ids(view: InboxView): string[] {
  return view.rows.map((row) => row.item.id);
}

describe("applyChange", () => {
  it("shows the claim a change carries, on a new row as on a loaded one", () => {
    let view = applyChange(empty, { ...entered(1, "a"), claim: "UNCLAIMED" }, {});
    expect(view.rows[0].claim).toBe("UNCLAIMED");
    view = applyChange(view, { seq: 2, kind: "UPDATED", itemId: "a", item: item("a"), claim: "OTHERS" }, {});
    expect(view.rows[0].claim).toBe("OTHERS");
    // a loaded row (claim from the page) follows a release the same way
    const loaded: InboxView = { rows: [{ ...view.rows[0], claim: "MINE", fresh: false }], lastSeq: 2 };
    view = applyChange(loaded, { seq: 3, kind: "UPDATED", itemId: "a", item: item("a"), claim: "UNCLAIMED" }, {});
    expect(view.rows[0].claim).toBe("UNCLAIMED");
  });

  it("adds an entered item once, however often the change is replayed", () => {
    let view = applyChange(empty, entered(5, "a"), {});
    view = applyChange(view, entered(5, "a"), {});
    view = applyChange(view, entered(4, "a"), {});
    expect(ids(view)).toEqual(["a"]);
    expect(view.rows[0].fresh).toBe(true);
    expect(view.rows[0].dueAt).toBe("2026-11-29T18:00:00+00:00");
  });

  it("never resurrects a row that left when an older change is replayed", () => {
    let view = applyChange(empty, entered(1, "a"), {});
    view = applyChange(view, left(2, "a"), {});
    view = applyChange(view, entered(1, "a"), {});
    expect(ids(view)).toEqual([]);
  });

  it("replaying any prefix of a feed again changes nothing (no loss, no duplicate)", () => {
    // Every sequence of enter/update/leave over a few items, replayed from every point.
    const kinds = ["ENTERED", "UPDATED", "LEFT"] as const;
    for (let n = 0; n < 200; n++) {
      const feed: InboxChangeLike[] = [];
      let x = n * 7919 + 13;
      for (let seq = 1; seq <= 12; seq++) {
        x = (x * 1103515245 + 12345) % 2147483648;
        const id = "abcd"[x % 4];
        const kind = kinds[(x >> 3) % 3];
        feed.push({ seq, kind, itemId: id, item: kind === "LEFT" ? null : item(id, { priority: seq }) });
      }
      const once = feed.reduce((v, c) => applyChange(v, c, {}), empty);
      for (let cut = 0; cut <= feed.length; cut++) {
        const before = feed.slice(0, cut).reduce((v, c) => applyChange(v, c, {}), empty);
        const replayedFrom = Math.max(0, cut - 3); // a resumed stream repeats a few events
        const resumed = feed.slice(replayedFrom).reduce((v, c) => applyChange(v, c, {}), before);
        expect(new Set(ids(resumed)).size).toBe(ids(resumed).length);
        expect([...ids(resumed)].sort()).toEqual([...ids(once)].sort());
        for (const row of resumed.rows) {
          expect(row.item).toEqual(once.rows.find((r) => r.item.id === row.item.id)?.item);
        }
      }
    }
  });

  it("drops an updated item that no longer matches the filter", () => {
    let view = applyChange(empty, entered(1, "a"), { states: ["PENDING"] });
    view = applyChange(view, { seq: 2, kind: "UPDATED", itemId: "a", item: item("a", { state: "APPROVED" }) }, { states: ["PENDING"] });
    expect(ids(view)).toEqual([]);
  });
});

describe("matchesFilter", () => {
  it("combines the filters with AND", () => {
    const it1 = item("a", { risk: "HIGH", title: "Deploy payments" });
    expect(matchesFilter(it1, { risks: ["HIGH"], text: "PAYMENTS" })).toBe(true);
    expect(matchesFilter(it1, { risks: ["HIGH"], text: "billing" })).toBe(false);
    expect(matchesFilter(it1, { kinds: ["PLAN"] })).toBe(false);
    expect(matchesFilter(it1, { priorityMin: 1 })).toBe(false);
  });
});

describe("appendPage", () => {
  it("leaves out items already shown (a live row that a later page also holds)", () => {
    const view = applyChange(empty, entered(1, "a"), {});
    const next = appendPage(view, [
      { item: item("a"), dueAt: null, overdue: false, claim: null, fresh: false },
      { item: item("b"), dueAt: null, overdue: false, claim: null, fresh: false },
    ]);
    expect(ids(next)).toEqual(["a", "b"]);
  });
});
