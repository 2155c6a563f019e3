"""uvicorn's httptools protocol, writing a response's head and its body in one write.

uvicorn writes the status line and headers when the application sends
`http.response.start`, and the body when it sends `http.response.body`: two writes, so two
`send` system calls for every response and, on loopback, two wake-ups of the client, which
reads the head, waits, and reads the body (docs/architecture.md, "A response in one write").
Litestar sends the two messages one after the other, with nothing awaited in between. Here
the connection's transport holds a response's head back until the next write, which sends
head and body together; if nothing follows in the same turn of the event loop (a streamed
response that awaits before its first chunk), the head goes out on the loop's next turn. So
every byte is written in the order uvicorn wrote it, at most one loop turn later, and a
connection upgraded to a websocket gets the connection's own transport, untouched.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HEAD = b"HTTP/1.1 "


class HeldHeadTransport:
    """A transport that holds a written response head until the next write or the loop's
    next turn, whichever comes first; everything else is the wrapped transport's."""

    __slots__ = ("_flush", "_held", "_loop", "raw")

    def __init__(self, raw: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.raw = raw
        self._loop = loop
        self._held: bytes | None = None
        self._flush: asyncio.Handle | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if self._flush is not None:
                self._flush.cancel()
                self._flush = None
            self.raw.write(held + data)
        elif data.startswith(_HEAD):
            self._held = data
            self._flush = self._loop.call_soon(self.flush)
        else:
            self.raw.write(data)

    def flush(self) -> None:
        """Write what is held now (if the connection is still open)."""
        held, self._held = self._held, None
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if held is not None and not self.raw.is_closing():
            self.raw.write(held)

    def close(self) -> None:
        self.flush()
        self.raw.close()

    def write_eof(self) -> None:
        self.flush()
        self.raw.write_eof()

    def is_closing(self) -> bool:
        return self.raw.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.raw.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a `HeldHeadTransport` (see the module)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(HeldHeadTransport(transport, self.loop))  # type: ignore[arg-type]

    def handle_websocket_upgrade(self) -> None:
        # The websocket protocol (and the fan-out, which writes frames to it) gets the
        # connection's own transport.
        transport = self.transport
        if isinstance(transport, HeldHeadTransport):
            transport.flush()
            self.transport = transport.raw
        super().handle_websocket_upgrade()
