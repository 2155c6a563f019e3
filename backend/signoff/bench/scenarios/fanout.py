"""fanout: `inboxChanged` pushed to 2,000 websocket subscribers of one API process at 20 events/s,
beside a plain `websockets` broadcast server pushing the same payloads to as many sockets.

Every subscriber is a reviewer of its own with the role the demo `change-approval` template
assigns, so each submitted item enters every subscriber's inbox once. The subscribers run in
client processes of their own (``python -m signoff.bench.scenarios.fanout client ...``), a
thousand sockets each, on `signoff.bench.wsclient` (a protocol that parses frame headers only
and finds the event's number by a byte search), so that the clients' Python is not what is
measured; they note when each event arrives, and a subscription ended by `ResyncRequired`
resubscribes after the marker's cursor, as a frontend does. Both sides use the same client.
The producer submits items through the service layer at a fixed rate and notes when each
submission has committed; the baseline's producer sends the same payload (a message captured
from signoff, numbered the same way) through a socket to a server that
broadcasts it with `websockets.broadcast`. Both sides start fresh processes for every run.

Figures: latency from commit (or send) to arrival, p50 and p99 over every (socket, event);
events still missing 2 s after the last one was produced, and the sockets they are missing
from (the same events missing from every socket: the server is behind; from a few: those fell
behind, see the resync count); database transactions per event
beyond the producer's own (PostgreSQL's `pg_stat_database`, read after its statistics are
flushed; the producer's own transactions per event are measured first, without subscribers);
resident memory per socket of the server process (after the events minus before the sockets).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import uvloop
import websockets
from websockets.asyncio.server import broadcast, serve
from websockets.typing import Subprotocol

from signoff.bench import BenchEnv, Figure, Scenario, ScenarioResult, Target, alternate, wsclient
from signoff.bench.env import process_cpu_seconds
from signoff.domain.actors import Actor, Principal
from signoff.services.context import ServiceContext
from signoff.services.items import SubmitItemInput, submit_item
from signoff.services.templates import load_templates
from signoff.testing import free_port

log = logging.getLogger("signoff.bench")

DEMO_TEMPLATES = Path(__file__).resolve().parents[2] / "demo"
TEMPLATE = "change-approval"
ROLE = "change-approver"
TENANT = "fanout"
PROTOCOL = Subprotocol("graphql-transport-ws")
RATE = 20.0  # events per second
GRACE = 2.0  # seconds after the last event before counting what is missing
STATS_FLUSH = 11.0  # PostgreSQL flushes an idle backend's statistics within 10 s
MARK = b"fanout-"
MARK_PATTERN = re.compile(r"fanout-(\d+)")

INBOX = """
subscription($after: String) {
  inboxChanged(after: $after) {
    __typename
    ... on InboxChange {
      cursor seq kind reason action actorId itemId stepId occurredAt
      item { id title state priority steps { key stepState } }
    }
    ... on ResyncRequired { cursor seq }
  }
}"""


# ---------------------------------------------------------------------------- client side


class _Client:
    """One client process: its sockets and when each numbered event reached each of them.

    The sockets are `signoff.bench.wsclient` connections: a frame is looked at only for the
    event's number (a byte search), so that the clients stay cheap beside the server."""

    def __init__(self) -> None:
        self.arrivals: list[list[tuple[int, float]]] = []
        self.failed = 0
        self.resyncs = 0

    async def open(self, mode: str, url: str, token: str | None) -> None:
        arrivals: list[tuple[int, float]] = []
        acknowledged = asyncio.get_running_loop().create_future()
        socket: wsclient.RawWebSocket | None = None
        operations = iter(range(2, 1 << 30))

        def on_frame(_opcode: int, payload: bytes, now: float) -> None:
            at = payload.find(MARK)
            if at >= 0:
                start = at + len(MARK)
                end = start
                while end < len(payload) and 48 <= payload[end] <= 57:
                    end += 1
                arrivals.append((int(payload[start:end]), now))
            elif b"ResyncRequired" in payload:
                # Fell behind: the stream ends; resume after the marker's cursor (rare, so the
                # frame is parsed).
                self.resyncs += 1
                marker = json.loads(payload)["payload"]["data"]["inboxChanged"]
                if socket is not None:
                    socket.send(wsclient.TEXT, _subscribe(next(operations), marker["cursor"]))
            elif b'"connection_ack"' in payload and not acknowledged.done():
                acknowledged.set_result(None)
            elif b'"ping"' in payload and socket is not None:
                socket.send(wsclient.TEXT, b'{"type":"pong"}')

        try:
            socket = await wsclient.connect(
                url,
                on_frame,
                time.time,
                subprotocol=PROTOCOL if mode == "signoff" else None,
            )
            if mode == "signoff":
                init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
                socket.send(wsclient.TEXT, json.dumps(init).encode())
                await asyncio.wait_for(acknowledged, 120)
                socket.send(wsclient.TEXT, _subscribe(1, None))
        except Exception as exc:
            self.failed += 1
            print(f"socket failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return
        self.arrivals.append(arrivals)

    def report(self, sent: dict[int, float]) -> dict[str, Any]:
        latencies: Counter[float] = Counter()
        received = 0
        short = 0
        for arrivals in self.arrivals:
            got = len({n for n, _ in arrivals if n in sent})
            received += got
            short += got < len(sent)
            for n, at in arrivals:
                if n in sent:
                    latencies[_bucket((at - sent[n]) * 1000)] += 1
        return {
            "sockets": len(self.arrivals),
            "failed": self.failed,
            "resyncs": self.resyncs,
            "received": received,
            "short": short,
            "latency_ms": [[k, v] for k, v in latencies.items()],
        }


def _subscribe(operation: int, after: str | None) -> bytes:
    variables = {"after": after} if after is not None else {}
    message = {
        "id": str(operation),
        "type": "subscribe",
        "payload": {"query": INBOX, "variables": variables},
    }
    return json.dumps(message).encode()


def _bucket(ms: float) -> float:
    """A latency rounded to 3 significant digits (what the report shows)."""
    return float(f"{max(ms, 0.001):.3g}")


def _read_json(path: str) -> Any:
    return json.loads(Path(path).read_text())


async def _client_main(mode: str, url: str, tokens_path: str) -> None:
    tokens: list[str | None] = _read_json(tokens_path)
    client = _Client()
    opening = asyncio.Semaphore(20)

    async def open_one(token: str | None) -> None:
        async with opening:
            await client.open(mode, url, token)

    await asyncio.gather(*(open_one(t) for t in tokens))
    print(json.dumps({"ready": len(client.arrivals), "failed": client.failed}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    sent_path = (await reader.readline()).decode().strip()
    sent = {int(k): v for k, v in _read_json(sent_path).items()}
    print(json.dumps(client.report(sent)), flush=True)


# ---------------------------------------------------------------------------- baseline server


async def _broadcast_main(port: int) -> None:
    subscribers: set[Any] = set()

    async def handler(ws: Any) -> None:
        if ws.request.path == "/produce":
            async for message in ws:
                broadcast(subscribers, message)
            return
        subscribers.add(ws)
        try:
            await ws.wait_closed()
        finally:
            subscribers.discard(ws)

    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None):
        print("listening", flush=True)
        await asyncio.Future()


# ---------------------------------------------------------------------------- coordinator


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid` (MB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


class _Clients:
    """The client processes of one run."""

    def __init__(self, procs: list[asyncio.subprocess.Process]) -> None:
        self.procs = procs

    @classmethod
    async def start(
        cls, work: Path, mode: str, url: str, tokens: list[str | None], processes: int
    ) -> _Clients:
        procs = []
        for index in range(processes):
            path = work / f"{mode}-tokens-{index}.json"
            path.write_text(json.dumps(tokens[index::processes]))
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    __name__,
                    "client",
                    mode,
                    url,
                    str(path),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=(work / f"{mode}-client-{index}.log").open("ab"),
                )
            )
        clients = cls(procs)
        try:
            for proc in procs:
                assert proc.stdout is not None
                line = await asyncio.wait_for(proc.stdout.readline(), 600)
                ready = json.loads(line or b"{}")
                if ready.get("failed") or "ready" not in ready:
                    raise RuntimeError(f"{mode} clients could not all connect: {ready}")
        except BaseException:
            await clients.stop()
            raise
        return clients

    async def report(self, work: Path, sent: dict[int, float]) -> dict[str, Any]:
        path = work / "sent.json"
        path.write_text(json.dumps(sent))
        total: dict[str, Any] = {
            "sockets": 0,
            "failed": 0,
            "resyncs": 0,
            "received": 0,
            "short": 0,
        }
        latencies: Counter[float] = Counter()
        for proc in self.procs:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(f"{path}\n".encode())
            await proc.stdin.drain()
        for proc in self.procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 300)
            part = json.loads(line)
            for key in ("sockets", "failed", "resyncs", "received", "short"):
                total[key] += part[key]
            for bucket, count in part["latency_ms"]:
                latencies[bucket] += count
        total["latencies"] = latencies
        return total

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


def _percentile(histogram: Counter[float], pct: float) -> float:
    total = sum(histogram.values())
    if not total:
        return math.nan
    rank = math.ceil(total * pct / 100)
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


async def _paced(count: int, send: Callable[[int], Awaitable[None]]) -> dict[int, float]:
    """Call `send(n)` for n in 0..count-1 at RATE per second; when each one completed."""
    sent: dict[int, float] = {}
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n in range(count):
        delay = start + n / RATE - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(n)
        sent[n] = time.time()
    return sent


async def _transactions(conn: asyncpg.Connection) -> int:
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    value = await conn.fetchval(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = "
        "current_database()"
    )
    return int(value)


class _Bench:
    """The state one scenario run shares between its measurements."""

    def __init__(self, env: BenchEnv, ctx: ServiceContext, conn: asyncpg.Connection) -> None:
        self.env = env
        self.ctx = ctx
        self.conn = conn
        self.subscribers = env.size(2000, 200)
        self.events = int(RATE * env.size(20.0, 5.0))
        self.processes = env.size(2, 2)
        self.tokens: list[str | None] = [
            env.token(TENANT, f"reviewer-{n}", roles=[ROLE]) for n in range(self.subscribers)
        ]
        self.overrides = {"ws_max_sockets_per_address": self.subscribers + 100}
        self.work = Path(tempfile.mkdtemp(prefix="fanout-", dir=env.work_dir))
        self.requester = Actor(Principal("requester", TENANT))
        self.payload = ""
        self.producer_transactions = math.nan

    async def submit(self, n: int) -> None:
        await submit_item(
            self.requester,
            self.ctx,
            SubmitItemInput(
                template_key=TEMPLATE,
                title=f"fanout-{n}",
                payload={"title": f"fanout-{n}", "system": "bench", "rollback_plan": "undo"},
            ),
        )

    async def capture_payload(self) -> None:
        """One message as signoff pushes it: the baseline's payload."""
        [api] = await self.env.start_api(1, **self.overrides)
        url = api.url.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(
            url,
            subprotocols=[PROTOCOL],
            compression=None,
        ) as ws:
            init = {
                "type": "connection_init",
                "payload": {"Authorization": f"Bearer {self.tokens[0]}"},
            }
            await ws.send(json.dumps(init))
            await ws.recv()
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": INBOX}}))
            await asyncio.sleep(1.0)  # subscribed (the first change after it is pushed)
            await self.submit(0)
            self.payload = str(await asyncio.wait_for(ws.recv(), 60))
        if not MARK_PATTERN.search(self.payload):
            raise RuntimeError(f"unexpected message: {self.payload[:300]}")
        await self.env.stop([api])

    async def calibrate(self) -> None:
        """The producer's own transactions per event, without subscribers."""
        [api] = await self.env.start_api(1, **self.overrides)
        count = max(20, self.events // 4)
        await asyncio.sleep(STATS_FLUSH)
        before = await _transactions(self.conn)
        await _paced(count, self.submit)
        await asyncio.sleep(STATS_FLUSH)
        after = await _transactions(self.conn)
        self.producer_transactions = (after - before) / count
        await self.env.stop([api])

    async def signoff(self) -> dict[str, float]:
        [api] = await self.env.start_api(1, **self.overrides)
        url = api.url.replace("http://", "ws://") + "/graphql"
        rss_before = rss_mb(api.pid)
        clients = await _Clients.start(self.work, "signoff", url, self.tokens, self.processes)
        try:
            await asyncio.sleep(STATS_FLUSH)  # subscriptions registered, statistics flushed
            cpu_before = api.cpu_seconds()
            before = await _transactions(self.conn)
            sent = await _paced(self.events, self.submit)
            await asyncio.sleep(GRACE)
            totals = await clients.report(self.work, sent)
            cpu = api.cpu_seconds() - cpu_before
            rss_after = rss_mb(api.pid)
        finally:
            await clients.stop()
        await asyncio.sleep(STATS_FLUSH)
        after = await _transactions(self.conn)
        await self.env.stop([api])
        fanout_tx = (after - before) / self.events - self.producer_transactions
        return self._figures(totals, rss_after - rss_before) | {
            "transactions_per_event": max(fanout_tx, 0.0),
            "cpu_per_message_us": cpu / max(totals["received"], 1) * 1e6,
        }

    async def broadcast(self) -> dict[str, float]:
        port = free_port()
        server = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            "broadcast",
            str(port),
            stdout=asyncio.subprocess.PIPE,
            stderr=(self.work / "broadcast.log").open("ab"),
        )
        try:
            assert server.stdout is not None
            await asyncio.wait_for(server.stdout.readline(), 60)
            rss_before = rss_mb(server.pid)
            url = f"ws://127.0.0.1:{port}/"
            clients = await _Clients.start(
                self.work, "plain", url, [None] * self.subscribers, self.processes
            )
            try:
                await asyncio.sleep(2.0)
                producer = await websockets.connect(url + "produce", compression=None)
                sample = MARK_PATTERN.sub(
                    "fanout-{n}", self.payload.replace("{", "{{").replace("}", "}}")
                )

                async def send(n: int) -> None:
                    await producer.send(sample.format(n=n))

                cpu_before = process_cpu_seconds(server.pid)
                sent = await _paced(self.events, send)
                await asyncio.sleep(GRACE)
                totals = await clients.report(self.work, sent)
                cpu = process_cpu_seconds(server.pid) - cpu_before
                rss_after = rss_mb(server.pid)
                await producer.close()
            finally:
                await clients.stop()
        finally:
            with contextlib.suppress(ProcessLookupError):
                server.kill()
            await server.wait()
        return self._figures(totals, rss_after - rss_before) | {
            "cpu_per_message_us": cpu / max(totals["received"], 1) * 1e6
        }

    def _figures(self, totals: dict[str, Any], grown_mb: float) -> dict[str, float]:
        histogram: Counter[float] = totals["latencies"]
        expected = self.subscribers * self.events
        return {
            "p50_ms": _percentile(histogram, 50),
            "p99_ms": _percentile(histogram, 99),
            "missing": expected - totals["received"],
            "sockets_short": totals["short"],
            "resyncs": totals["resyncs"],
            "kb_per_socket": grown_mb * 1024 / self.subscribers,
        }


async def run(env: BenchEnv) -> ScenarioResult:
    result = SCENARIO.result()
    started = time.perf_counter()
    ctx = await env.services(max_open_items_per_requester=10**9)
    admin = Actor(Principal("admin", TENANT, roles=frozenset(env.settings.admin_roles)))
    await load_templates(admin, ctx, DEMO_TEMPLATES)
    conn = await env.connect()
    bench = _Bench(env, ctx, conn)
    await bench.capture_payload()
    await bench.calibrate()
    set_up = time.perf_counter() - started
    runs = await alternate(env.repeats, signoff=bench.signoff, broadcast=bench.broadcast)
    label = f"{bench.subscribers:,} subscribers, {RATE:g} events/s"

    def pair(key: str, name: str, unit: str, target: Target | None, if_missed: str) -> None:
        baseline = Figure(f"plain broadcast {name}", unit, "lower", runs.series("broadcast", key))
        result.add(
            Figure(
                f"{name}, {label}",
                unit,
                "lower",
                runs.series("signoff", key),
                baseline=baseline,
                target=target,
                if_missed=if_missed,
            )
        )

    pair("p50_ms", "p50 latency", "ms", None, "")
    pair(
        "p99_ms",
        "p99 latency",
        "ms",
        Target.ratio_at_most(5),
        "the reader writes every socket of a batch in one pass, so a message waits for the "
        "judgement and the writes of the sockets before it; compare `API CPU per pushed "
        "message` with the plain server's (below): about 8 µs of a message is the socket "
        "write itself on this machine, whatever the server, the rest is Python per socket; "
        "`signoff bench --profile fanout` shows where.",
    )
    pair(
        "missing",
        f"events missing {GRACE:g} s after the last",
        "",
        Target.at_most(0),
        "when the same events are missing from every socket (`sockets missing events` equals "
        "the subscribers) the server was still behind, short of the CPU the messages need "
        "(`API CPU per pushed message`); subscribers that fell behind by more than the queue "
        "bound were ended with ResyncRequired (`subscriptions ended by ResyncRequired`), "
        "resumed after its cursor, and miss only what they had not caught up with.",
    )
    pair(
        "kb_per_socket",
        "memory per socket",
        "KiB",
        Target.ratio_at_most(2),
        "the API process keeps more per socket than a bare websocket: uvicorn's connection "
        "under any ASGI app (~20 KiB of Python heap: its protocol, the handshake's headers, "
        "its receive queue, the connection's ASGI task), Litestar's and strawberry's "
        "per-connection objects (~6 KiB) and the subscription's own state (~6 KiB), against "
        "the plain broadcast's ~12 KiB of RSS for the whole socket. Trimming does not reach "
        "2x: it takes a websocket connection of signoff's own under uvicorn (a protocol class "
        "that splits frames itself and hands messages to a graphql-transport-ws handler "
        "without an ASGI task or receive queue, keeping every rule and close code of today's "
        'handler) (docs/architecture.md, "Memory per socket, where it is").',
    )
    result.add(
        Figure(
            f"sockets missing events {GRACE:g} s after the last, {label}",
            "",
            "lower",
            runs.series("signoff", "sockets_short"),
            baseline=Figure(
                "plain broadcast sockets missing events",
                "",
                "lower",
                runs.series("broadcast", "sockets_short"),
            ),
        )
    )
    result.add(
        Figure(
            f"subscriptions ended by ResyncRequired (then resumed), {label}",
            "",
            "lower",
            runs.series("signoff", "resyncs"),
        )
    )
    result.add(
        Figure(
            f"database transactions per event beyond the producer's, {label}",
            "",
            "lower",
            runs.series("signoff", "transactions_per_event"),
            target=Target.at_most(10),
            if_missed="some database work is still done per subscriber.",
        )
    )
    result.add(
        Figure(
            f"API CPU per pushed message, {label}",
            "µs",
            "lower",
            runs.series("signoff", "cpu_per_message_us"),
            baseline=Figure(
                "plain broadcast server's CPU per pushed message",
                "µs",
                "lower",
                runs.series("broadcast", "cpu_per_message_us"),
            ),
        )
    )
    result.parameters = {
        "subscribers": f"{bench.subscribers:,} in {bench.processes} client processes",
        "events": f"{bench.events} at {RATE:g}/s",
        "producer transactions per event": round(bench.producer_transactions, 2),
        "set-up (s)": round(set_up),
        "order": " ".join(runs.order()),
    }
    result.note(
        "Latency is measured from the producer's commit (signoff) or send (baseline) to the "
        "arrival at the client, both clocks the same machine's; it includes the clients' own "
        "queueing, equal on both sides. Database transactions are PostgreSQL's count for the "
        "bench database, minus the producer's own per event (measured without subscribers); "
        "a test counts the statements per batch structurally (tests/realtime/test_fanout_cost.py)."
    )
    return result


SCENARIO = Scenario(
    name="fanout",
    title="- inboxChanged to 2,000 subscribers beside a plain websockets broadcast",
    run=run,
    description=__doc__ or "",
)


def main() -> None:
    """Child entry points: ``client MODE URL TOKENS`` and ``broadcast PORT``."""
    role = sys.argv[1]
    if role == "client":
        uvloop.run(_client_main(sys.argv[2], sys.argv[3], sys.argv[4]))
    elif role == "broadcast":
        uvloop.run(_broadcast_main(int(sys.argv[2])))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main()
