import { parse } from "graphql";
import type { Client, Sink } from "graphql-ws";
import { describe, expect, it } from "vitest";
import { subscribeResumable, type LivePayload } from "./live";

/** A stand-in for the graphql-ws client that records what it was asked to subscribe with, the
 * way the real one keeps the payload object and re-sends it on every retry. */
function recordingClient() {
  const calls: { payload: LivePayload; sink: Sink; sent: string | null }[] = [];
  const client = {
    subscribe(payload: LivePayload, sink: Sink) {
      calls.push({ payload, sink, sent: payload.variables.after });
      return () => {};
    },
  } as unknown as Client;
  return { client, calls };
}

const doc = parse("subscription($after: String) { inboxChanged(after: $after) { __typename } }");

describe("subscribeResumable", () => {
  it("keeps the cursor of the last message in the payload a retry re-sends", () => {
    const { client, calls } = recordingClient();
    const seen: string[] = [];
    const { payload } = subscribeResumable(client, doc, "inboxChanged", {}, "c0", (m) => seen.push(m.cursor));
    expect(calls[0].sent).toBe("c0");
    calls[0].sink.next({ data: { inboxChanged: { __typename: "InboxChange", cursor: "c1" } } });
    calls[0].sink.next({ data: { inboxChanged: { __typename: "InboxChange", cursor: "c2" } } });
    expect(seen).toEqual(["c1", "c2"]);
    // graphql-ws resubscribes after a dropped socket with this very object:
    expect(calls[0].payload).toBe(payload);
    expect(payload.variables.after).toBe("c2");
  });

  it("resubscribes after ResyncRequired from its cursor", () => {
    const { client, calls } = recordingClient();
    const seen: string[] = [];
    subscribeResumable(client, doc, "inboxChanged", {}, "c0", (m) => seen.push(m.cursor));
    calls[0].sink.next({ data: { inboxChanged: { __typename: "ResyncRequired", cursor: "c7" } } });
    calls[0].sink.complete();
    expect(calls).toHaveLength(2);
    expect(calls[1].sent).toBe("c7");
    expect(seen).toEqual([]);
  });

  it("does not resubscribe after a plain end or a stop", () => {
    const { client, calls } = recordingClient();
    const sub = subscribeResumable(client, doc, "inboxChanged", {}, null, () => {});
    calls[0].sink.complete();
    sub.stop();
    expect(calls).toHaveLength(1);
  });
});
