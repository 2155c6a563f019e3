"""Test helpers shipped with signoff, for the core's tests and for plugin authors.

``FakeChannel`` is a complete notification channel plugin that keeps what it delivers in
memory and can be told to fail or hang; ``RecordingHTTPServer`` is a real HTTP server on
127.0.0.1 (ephemeral port) standing in for a provider's API or a webhook receiver::

    registry = NotifierRegistry(deliver_timeout=0.5)
    fake = FakeChannel()
    registry.register(fake, "fake")
    registry.configure({"fake": {}})
    fake.fail_times(2)              # two retryable failures, then success
    await registry.deliver("fake", message, recipient)
    assert fake.sent[0].message.subject == ...
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import inspect
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from signoff.notify import (
    ChannelCapabilities,
    ChannelSpec,
    ConfigProblem,
    DeliveryResult,
    Interaction,
    InteractionRejected,
    NotificationEvent,
    Recipient,
    RenderedMessage,
    Secret,
    hookimpl,
)
from signoff.notify.signing import timing_safe_equal

__all__ = [
    "FakeChannel",
    "FakeChannelConfig",
    "HTTPReply",
    "ReceivedRequest",
    "RecordingHTTPServer",
    "SentMessage",
]


@dataclass(frozen=True, slots=True)
class FakeChannelConfig:
    """Config of the fake channel. ``token``, when set, signs interactive callbacks."""

    token: Secret | None = None
    require_token: bool = False


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One message the fake channel delivered."""

    channel: str
    message: RenderedMessage
    recipient: Recipient
    config: FakeChannelConfig


class FakeChannel:
    """An in-memory channel plugin. Register one instance per channel name.

    - ``sent``: every delivered message, in order; ``attempts``: every attempt, failed or not.
    - ``fail_times(n)``: the next n attempts fail retryably; ``fail_permanently()``: every
      attempt fails permanently; ``hang()``: attempts never return (the registry times out).
    - Callbacks: JSON body ``{"action", "item_id", "step_id", "actor", "key", "reason"}`` with
      header ``x-fake-signature`` equal to the configured token.
    """

    def __init__(self, name: str = "fake", *, render: bool = True) -> None:
        self.name = name
        self.renders = render
        self.sent: list[SentMessage] = []
        self.attempts = 0
        self._failures_left = 0
        self._failure_error = ""
        self._permanent_error: str | None = None
        self._hang = False
        self._condition: asyncio.Condition | None = None

    def __repr__(self) -> str:
        return f"FakeChannel(name={self.name!r}, sent={len(self.sent)})"

    # ---- controls

    def fail_times(self, count: int, error: str = "simulated retryable failure") -> None:
        self._failures_left = count
        self._failure_error = error

    def fail_permanently(self, error: str = "simulated permanent failure") -> None:
        self._permanent_error = error

    def hang(self, hang: bool = True) -> None:
        self._hang = hang

    def reset(self) -> None:
        self.sent.clear()
        self.attempts = 0
        self._failures_left = 0
        self._permanent_error = None
        self._hang = False

    async def wait_for_sent(
        self,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - a test helper's own deadline
    ) -> list[SentMessage]:
        """Wait until at least ``count`` messages were delivered (no sleeping and hoping)."""
        condition = self._get_condition()
        async with condition:
            await asyncio.wait_for(condition.wait_for(lambda: len(self.sent) >= count), timeout)
        return list(self.sent)

    def _get_condition(self) -> asyncio.Condition:
        if self._condition is None:
            self._condition = asyncio.Condition()
        return self._condition

    # ---- hooks

    @hookimpl
    def signoff_channels(self) -> list[ChannelSpec]:
        return [
            ChannelSpec(
                name=self.name,
                config_class=FakeChannelConfig,
                capabilities=ChannelCapabilities(interactive_actions=True, threading=True),
                description="In-memory channel for tests",
            )
        ]

    @hookimpl
    def signoff_validate_config(
        self, channel: str, config: Mapping[str, Any]
    ) -> list[ConfigProblem]:
        if channel != self.name:
            return []
        if config["require_token"] and not config["token"]:
            return [ConfigProblem("token", "required when require_token is set")]
        return []

    @hookimpl
    def signoff_render(
        self, channel: str, event: NotificationEvent, recipient: Recipient
    ) -> RenderedMessage | None:
        if channel != self.name or not self.renders:
            return None
        return RenderedMessage(
            event_id=event.id,
            subject=f"{event.kind}: {event.title}",
            text=f"Hello {recipient.display_name or recipient.user_id}: {event.summary}",
            thread_key=f"{event.tenant_id}:{event.item_id}",
            link=event.link,
            metadata={"renderer": "fake"},
        )

    @hookimpl
    async def signoff_deliver(
        self,
        channel: str,
        message: RenderedMessage,
        recipient: Recipient,
        config: FakeChannelConfig,
    ) -> DeliveryResult | None:
        if channel != self.name:
            return None
        self.attempts += 1
        if self._hang:
            await asyncio.Event().wait()
        if self._permanent_error is not None:
            return DeliveryResult.permanent(self._permanent_error)
        if self._failures_left > 0:
            self._failures_left -= 1
            raise ConnectionError(self._failure_error)
        self.sent.append(SentMessage(channel, message, recipient, config))
        condition = self._get_condition()
        async with condition:
            condition.notify_all()
        return DeliveryResult.delivered(
            response="stored in memory", provider_message_id=f"fake-{len(self.sent)}"
        )

    @hookimpl
    def signoff_parse_interaction(
        self,
        channel: str,
        headers: Mapping[str, str],
        body: bytes,
        config: FakeChannelConfig,
    ) -> Interaction | None:
        if channel != self.name:
            return None
        if config.token is not None and not timing_safe_equal(
            headers.get("x-fake-signature", ""), config.token.reveal()
        ):
            raise InteractionRejected("bad signature")
        try:
            data = json.loads(body)
            action = data["action"]
            if action not in ("approve", "reject"):
                raise ValueError(action)
            return Interaction(
                action=action,
                item_id=str(data["item_id"]),
                step_id=data.get("step_id"),
                actor_external_id=str(data["actor"]),
                idempotency_key=f"fake:{data['key']}",
                reason=data.get("reason"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InteractionRejected(f"malformed callback: {exc}") from exc


# --------------------------------------------------------------------------- HTTP stand-in


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request the ``RecordingHTTPServer`` received; header names are lower-case."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class HTTPReply:
    """What the server answers."""

    status: int = 200
    body: bytes | str | Any = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json"


Handler = Callable[[ReceivedRequest], HTTPReply | Awaitable[HTTPReply]]


class RecordingHTTPServer:
    """A minimal HTTP/1.1 server (one request per connection) that records every request.

    ``handler`` decides the reply (sync or async; an async handler may wait forever to test
    client timeouts). Use as ``async with RecordingHTTPServer(handler) as server: server.url``.
    """

    def __init__(self, handler: Handler | None = None) -> None:
        self.handler: Handler = handler or (lambda request: HTTPReply(200, b"ok"))
        self.requests: list[ReceivedRequest] = []
        self._server: asyncio.Server | None = None
        self._condition = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

    async def wait_for_requests(
        self,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - a test helper's own deadline
    ) -> list[ReceivedRequest]:
        async with self._condition:
            await asyncio.wait_for(
                self._condition.wait_for(lambda: len(self.requests) >= count), timeout
            )
        return list(self.requests)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            request = await self._read(reader)
            if request is None:
                return
            async with self._condition:
                self.requests.append(request)
                self._condition.notify_all()
            reply = self.handler(request)
            if inspect.isawaitable(reply):
                reply = await reply
            body, content_type = reply.encoded()
            headers = {"content-type": content_type, **reply.headers}
            head = f"HTTP/1.1 {reply.status} X\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            head += f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> ReceivedRequest | None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) < 2:
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return ReceivedRequest(parts[0], parts[1], headers, body)


PORT_CLAIMS = Path(tempfile.gettempdir()) / "signoff-port-claims"
"""Where `free_port` claims ports: one file per port, locked by the process it was handed to."""

_CLAIMED: dict[int, int] = {}  # port -> the open file whose lock claims it, for life


def free_port() -> int:
    """A TCP port on 127.0.0.1 for a server a test starts in another process.

    The kernel's `bind(("127.0.0.1", 0))` hands out a port of its ephemeral range, and once
    that socket is closed, any outgoing connection of any process (another suite's database
    client) or another process's `bind(0)` may take the same port before the server binds it.
    So the port is picked below the ephemeral range (where outgoing connections never take
    one), free now, and claimed for the life of this process (`claim_port`) against every
    other process that asks here; one process never hands out a port twice.
    """
    low = ephemeral_ports()[0]
    candidates = range(max(1024, low - 12_000), low)
    for _ in range(500):
        port = random.choice(candidates)
        if port in _CLAIMED or not claim_port(port):
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use by a process that does not claim ports (the claim stays)
        return port
    raise RuntimeError(f"no free port in {candidates}")


def claim_port(port: int) -> bool:
    """Claim `port` for the life of this process (an exclusive advisory lock on a file of its
    own, released by the kernel when the process ends): False when another process holds it."""
    PORT_CLAIMS.mkdir(exist_ok=True)
    descriptor = os.open(PORT_CLAIMS / str(port), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        return False
    _CLAIMED[port] = descriptor
    return True


def ephemeral_ports() -> tuple[int, int]:
    """The kernel's range of ports for outgoing connections and `bind(0)` (Linux's default
    when it cannot be read)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def child_environment(**settings: str) -> dict[str, str]:
    """The environment for a `signoff` child process: this process's, without any `SIGNOFF_`
    setting of its own, plus `settings` (full variable names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    env.update(settings)
    return env


_started_logs: list[Path] = []


def started_logs() -> list[Path]:
    """The log files of the `signoff` processes started (by `signoff_processes`) since
    `forget_started_logs`, oldest first: a test harness shows their tails when a test fails."""
    return list(_started_logs)


def forget_started_logs() -> None:
    """Start a new list for `started_logs` (a harness calls it before each test)."""
    _started_logs.clear()


def log_tail(path: Path, lines: int = 80) -> str:
    """The last `lines` lines of a child's log file (all of it when shorter)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class RunningProcesses:
    """`signoff` commands started by `signoff_processes`, each writing to `<logs>/<name>.log`."""

    processes: dict[str, subprocess.Popen[bytes]]
    logs: Path

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()


def _start(
    commands: Mapping[str, Sequence[str]], env: Mapping[str, str], logs: Path
) -> tuple[RunningProcesses, list[Any]]:
    logs.mkdir(parents=True, exist_ok=True)
    outputs = {name: (logs / f"{name}.log").open("w") for name in commands}
    _started_logs.extend(logs / f"{name}.log" for name in commands)
    processes = {
        name: subprocess.Popen(  # noqa: S603 - our own command, arguments from the test
            [sys.executable, "-m", "signoff.cli", *arguments],
            # unbuffered: a log read while the process runs (a failing test's) is complete
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=outputs[name],
            stderr=subprocess.STDOUT,
        )
        for name, arguments in commands.items()
    }
    return RunningProcesses(processes, logs), list(outputs.values())


@contextlib.asynccontextmanager
async def signoff_processes(
    commands: Mapping[str, Sequence[str]],
    env: Mapping[str, str],
    logs: Path,
    ready: Sequence[str],
    timeout: float = 60.0,  # noqa: ASYNC109 - how long a start may take, not a test timer
) -> AsyncIterator[RunningProcesses]:
    """Start `signoff <arguments>` for each named command (``{"serve": ["serve"]}``), wait
    until every URL in `ready` answers 200 (failing with the log of a process that exits
    first), and terminate them all (SIGTERM, as a process manager does) on the way out.
    Their log files are listed by `started_logs`, for a harness to show when a test fails."""
    import httpx

    running, outputs = _start(commands, env, logs)
    try:
        async with httpx.AsyncClient(timeout=10) as probe:
            for url in ready:
                deadline = time.monotonic() + timeout
                while True:
                    for name, process in running.processes.items():
                        if process.poll() is not None:
                            raise AssertionError(f"{name} exited:\n{running.log(name)}")
                    try:
                        if (await probe.get(url)).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{url} did not answer within {timeout} s")
                    await asyncio.sleep(0.1)  # waiting for a real process to listen
        yield running
    finally:
        for process in running.processes.values():
            process.terminate()
        for process in running.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for output in outputs:
            output.close()


async def run_burst_after_one(worker: Any, settings: Any, function: str, tag: str) -> None:
    """Queue one `function` job (a unique id under the settings' prefix and `tag`), then run
    the burst `worker` until its queue is empty and close it. Tests queue the one round they
    want instead of giving the burst arq's cron, which follows the wall clock and could come
    due during the burst and run again."""
    from arq import create_pool
    from arq.connections import RedisSettings

    queue = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    try:
        await queue.enqueue_job(
            function,
            _job_id=f"{settings.redis_prefix}:{tag}:{uuid.uuid4().hex}",
            _queue_name=settings.job_queue_name,
        )
    finally:
        await queue.aclose()
    try:
        await worker.run_check()
    finally:
        await worker.close()
