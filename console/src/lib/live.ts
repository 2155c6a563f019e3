// Live subscriptions that lose nothing across a dropped connection: load a page, subscribe with
// `after: <the page's eventCursor>`, keep the cursor of the last message applied inside the one
// payload object that graphql-ws re-sends on every retry, and resubscribe after ResyncRequired.
import { print, type DocumentNode } from "graphql";
import type { Client as WsClient } from "graphql-ws";

/** A message of `inboxChanged` or `itemEvents`: a change, or the marker to resubscribe. */
export type Resumable = { __typename?: string; cursor: string };

export interface LivePayload {
  query: string;
  variables: Record<string, unknown> & { after: string | null };
}

/**
 * Subscribe to `document` (a subscription whose one field takes `after`) from `after`, call
 * `onMessage` with each message in order, and keep resuming after the last one: on a retry of
 * the socket (graphql-ws re-sends `payload`) and after `ResyncRequired`. Returns a stop function.
 */
export function subscribeResumable<M extends Resumable>(
  ws: WsClient,
  document: DocumentNode,
  field: string,
  variables: Record<string, unknown>,
  after: string | null,
  onMessage: (message: M) => void,
  onError: (error: unknown) => void = () => {},
): { stop: () => void; payload: LivePayload } {
  const payload: LivePayload = { query: print(document), variables: { ...variables, after } };
  let stopped = false;
  let dispose: () => void = () => {};
  const start = () => {
    let resync = false;
    dispose = ws.subscribe<Record<string, M>>(payload, {
      next: ({ data }) => {
        const message = data?.[field];
        if (!message) return;
        payload.variables.after = message.cursor; // a retry resumes after this one
        if (message.__typename === "ResyncRequired") resync = true;
        else onMessage(message);
      },
      error: onError,
      complete: () => {
        if (resync && !stopped) start();
      },
    });
  };
  start();
  return {
    payload,
    stop: () => {
      stopped = true;
      dispose();
    },
  };
}
