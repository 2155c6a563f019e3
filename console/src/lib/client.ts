// The two connections of a signed-in console: urql over HTTP for queries and mutations, and a
// graphql-ws client (graphql-transport-ws) for subscriptions, both carrying the bearer token.
import { createClient as createWsClient, type Client as WsClient } from "graphql-ws";
import { Client, cacheExchange, fetchExchange } from "urql";

export type LiveStatus = "connecting" | "live" | "reconnecting";

export interface Connections {
  http: Client;
  ws: WsClient;
  /** Subscribe to the socket's state; returns the unsubscribe function. */
  onStatus(listener: (status: LiveStatus) => void): () => void;
}

/** Retry soon and often: a reviewer's inbox should come back within about a second. */
export function retryDelay(retries: number): number {
  return Math.min(250 * 2 ** retries, 2000);
}

export function connect(token: string, origin: string = window.location.origin): Connections {
  const url = new URL("/graphql", origin).toString();
  const http = new Client({
    url,
    exchanges: [cacheExchange, fetchExchange],
    requestPolicy: "network-only",
    fetchOptions: () => ({ headers: { Authorization: `Bearer ${token}` } }),
  });
  const listeners = new Set<(status: LiveStatus) => void>();
  let status: LiveStatus = "connecting";
  const set = (next: LiveStatus) => {
    status = next;
    listeners.forEach((listener) => listener(next));
  };
  const ws = createWsClient({
    url: url.replace(/^http/, "ws"),
    connectionParams: () => ({ Authorization: `Bearer ${token}` }),
    // Never give up: every retry resubscribes with the payload objects it was given, whose
    // `after` the live views keep current (docs/realtime.md, "How a frontend reconnects").
    // Connected for the whole session (not only while subscribed), so the status shown is
    // the socket's and a page change does not close it.
    lazy: false,
    onNonLazyError: () => {}, // retried forever; the status says "reconnecting"
    retryAttempts: Infinity,
    shouldRetry: () => true,
    retryWait: (retries) => new Promise((resolve) => setTimeout(resolve, retryDelay(retries))),
    keepAlive: 10_000,
    on: {
      connected: () => set("live"),
      closed: () => set(status === "connecting" ? "connecting" : "reconnecting"),
    },
  });
  return {
    http,
    ws,
    onStatus(listener) {
      listeners.add(listener);
      listener(status);
      return () => listeners.delete(listener);
    },
  };
}
