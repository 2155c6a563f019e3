import { describe, expect, it } from "vitest";
import { retryableClose, retryingWebSocket } from "./client";

/** A stand-in for the browser's WebSocket: `onclose` is an accessor on its prototype, as in a
 * browser, and `closeWith` fires it the way the browser does. */
class FakeSocket {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  #onclose: ((event: CloseEvent) => unknown) | null = null;
  constructor(
    public url: string | URL,
    public protocols?: string | string[],
  ) {}
  get onclose() {
    return this.#onclose;
  }
  set onclose(listener) {
    this.#onclose = listener;
  }
  closeWith(code: number, reason: string) {
    this.#onclose?.({ code, reason, wasClean: true } as CloseEvent);
  }
}

describe("retryableClose", () => {
  it("turns the socket cap's 4429 into a close graphql-ws retries, keeping the reason", () => {
    expect(retryableClose({ code: 4429, reason: "Too many sockets (user)", wasClean: true })).toEqual({
      code: 1013,
      reason: "Too many sockets (user)",
      wasClean: true,
    });
  });

  it("leaves every other close as it is", () => {
    for (const code of [1000, 1006, 4400, 4403, 4408, 4499]) {
      const event = { code, reason: "r", wasClean: false };
      expect(retryableClose(event)).toBe(event);
    }
  });
});

describe("retryingWebSocket", () => {
  it("tells the onclose listener of a cap refusal as retryable, and of anything else as is", () => {
    const Socket = retryingWebSocket(FakeSocket as unknown as typeof WebSocket);
    const socket = new Socket("ws://api.example/graphql", "graphql-transport-ws");
    const seen: number[] = [];
    socket.onclose = (event) => seen.push(event.code);
    (socket as unknown as FakeSocket).closeWith(4429, "Too many sockets (address)");
    (socket as unknown as FakeSocket).closeWith(4403, "Token expired");
    expect(seen).toEqual([1013, 4403]);
    expect(Socket.OPEN).toBe(1);
  });
});
