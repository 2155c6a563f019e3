// The two connections of a signed-in console: urql over HTTP for queries and mutations, and a
// graphql-ws client (graphql-transport-ws) for subscriptions, both carrying the bearer token.
import { createClient as createWsClient, type Client as WsClient } from "graphql-ws";
import { Client, cacheExchange, fetchExchange } from "urql";

export type LiveStatus = "connecting" | "live" | "reconnecting" | "offline";

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

/** Close codes graphql-ws takes as final (it stops retrying for good) that signoff sends for
 * a condition that passes: 4429 "Too many sockets", the caps on open sockets per user and per
 * client address (docs/realtime.md), whose seat frees when another socket closes or its lease
 * lapses. */
const PASSING_CLOSE_CODES = new Set([4429]);
/** "Try Again Later": a close code graphql-ws retries. */
const TRY_AGAIN_LATER = 1013;

type CloseLike = Pick<CloseEvent, "code" | "reason" | "wasClean">;

/** `event`, or, for a close that passes, the same close as "Try Again Later". */
export function retryableClose(event: CloseLike): CloseLike {
  if (!PASSING_CLOSE_CODES.has(event.code)) return event;
  return { code: TRY_AGAIN_LATER, reason: event.reason, wasClean: event.wasClean };
}

type CloseListener = ((this: WebSocket, event: CloseEvent) => unknown) | null;

/** `Base` (the browser's WebSocket), except that graphql-ws, which listens with `onclose`, is
 * told of a close that passes as retryable: otherwise one refusal by a socket cap would leave
 * the console "reconnecting" for ever, its subscriptions stopped. */
export function retryingWebSocket(Base: typeof WebSocket = WebSocket): typeof WebSocket {
  const handler = Object.getOwnPropertyDescriptor(Base.prototype, "onclose") ??
    Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Base.prototype), "onclose");
  return class RetryingWebSocket extends Base {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols);
      let listener: CloseListener = null;
      Object.defineProperty(this, "onclose", {
        configurable: true,
        get: () => listener,
        set: (next: CloseListener) => {
          listener = next;
          const wrapped = next && ((event: CloseEvent) => next.call(this, retryableClose(event) as CloseEvent));
          handler?.set?.call(this, wrapped);
        },
      });
    }
  };
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
    webSocketImpl: retryingWebSocket(),
    // Retried for ever, except after a close that cannot pass (a refused subprotocol, a
    // malformed message): then the console says it is offline instead of "reconnecting".
    onNonLazyError: () => set("offline"),
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
