"""webhooks: notifications delivered by the webhook plugin to a local receiver, beside httpx.

Twenty reviewers hold the approver role of the demo `change-approval` template, each with a
webhook address on one HTTP receiver on loopback (`signoff.testing.RecordingHTTPServer`,
answering 200 at once). Each run submits items through the service layer with no worker
running, then starts one `signoff worker` with the webhook channel enabled: its sweeper plans
an assignment notification per item and reviewer and asks for a delivery job, which takes
them from the table in batches and delivers each through the plugin (claim, commit, signed
POST, record). The rate is taken at the receiver, from the first request to
the last, so that planning before the first delivery is not counted.

The baseline is a bare httpx loop posting as many JSON bodies of the same size to the same
receiver, with as many requests in flight as the worker runs jobs at once (arq's default, 10).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from signoff.bench import BenchEnv, Figure, Scenario, ScenarioResult, Target, alternate
from signoff.domain.actors import Actor, Principal
from signoff.services import notification_admin
from signoff.services.items import SubmitItemInput, submit_item
from signoff.services.templates import load_templates
from signoff.testing import HTTPReply, ReceivedRequest, RecordingHTTPServer

log = logging.getLogger("signoff.bench")

DEMO_TEMPLATES = Path(__file__).resolve().parents[2] / "demo"
TENANT = "webhooks"
REVIEWERS = 20
IN_FLIGHT = 10  # arq's default max_jobs: the deliveries one worker runs at once
SECRET = "bench-webhook-secret-0123456789"
PAYLOAD = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy previous"}


class Receiver:
    """Answers 200 at once and notes when each request arrived."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.sizes: list[int] = []
        self._awaited = 0
        self._reached = asyncio.Event()

    def __call__(self, request: ReceivedRequest) -> HTTPReply:
        self.arrivals.append(time.monotonic())
        self.sizes.append(len(request.body))
        if len(self.arrivals) >= self._awaited:
            self._reached.set()
        return HTTPReply(200, b'{"ok":true}')

    def since(self, mark: int) -> list[float]:
        return self.arrivals[mark:]

    async def wait_for(self, count: int, within: float) -> None:
        """Until `count` requests in all have arrived, or `within` seconds have passed."""
        self._awaited = count
        self._reached.clear()
        if len(self.arrivals) >= count:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._reached.wait(), within)


async def set_up(env: BenchEnv, url: str) -> None:
    ctx = await env.services()
    admin = Actor(Principal("admin", TENANT, roles=frozenset({"admin"})))
    await load_templates(admin, ctx, DEMO_TEMPLATES)
    for n in range(REVIEWERS):
        await notification_admin.upsert_user_profile(
            admin,
            ctx,
            notification_admin.ProfileInput(
                user_id=f"reviewer{n}",
                display_name=f"Reviewer {n}",
                roles=("change-approver",),
                addresses={"webhook": f"{url}/hooks/reviewer{n}"},
            ),
        )


async def submit(env: BenchEnv, count: int) -> None:
    ctx = await env.services()
    requester = Actor(Principal("requester", TENANT))
    for n in range(count):
        await submit_item(
            requester,
            ctx,
            SubmitItemInput(template_key="change-approval", title=f"Change {n}", payload=PAYLOAD),
        )


def measure_signoff(
    env: BenchEnv, receiver: Receiver, items: int
) -> Callable[[], Awaitable[dict[str, float]]]:
    async def measure() -> dict[str, float]:
        expected = items * REVIEWERS
        await submit(env, items)
        conn = await env.connect()
        mark = len(receiver.arrivals)
        (worker,) = await env.start_workers(
            1,
            notify_channels=json.dumps({"webhook": {"secrets": [SECRET], "timeout_seconds": 10}}),
            outbound_allow=("127.0.0.1/32",),
            notify_digest_threshold=1_000_000,  # every assignment is sent on its own
        )
        await receiver.wait_for(mark + expected, within=60 + expected / 10)
        arrivals = receiver.since(mark)
        for _ in range(100):  # the last attempts are recorded after their requests arrived
            open_ = await conn.fetchval(
                "SELECT count(*) FROM notification_delivery WHERE tenant_id = $1 "
                "AND status IN ('queued', 'retrying')",
                TENANT,
            )
            if not open_:
                break
            await asyncio.sleep(0.1)
        cpu = worker.cpu_seconds()
        await env.stop([worker])
        delivered = await conn.fetchval(
            "SELECT count(*) FROM notification_delivery WHERE tenant_id = $1 "
            "AND channel = 'webhook' AND status = 'delivered'",
            TENANT,
        )
        not_delivered = await conn.fetchval(
            "SELECT count(*) FROM notification_delivery WHERE tenant_id = $1 "
            "AND channel = 'webhook' AND status <> 'delivered'",
            TENANT,
        )
        span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
        log.info("webhooks: %s of %s delivered in %.1f s", len(arrivals), expected, span)
        return {
            "throughput": (len(arrivals) - 1) / span if span else float("nan"),
            "missing": float(expected - len(arrivals)),
            "not_delivered": float(not_delivered),
            "delivered_total": float(delivered),
            "worker_cpu_ms_per_delivery": 1000 * cpu / max(1, len(arrivals)),
        }

    return measure


def measure_httpx(
    receiver: Receiver, url: str, count: int, size: int
) -> Callable[[], Awaitable[dict[str, float]]]:
    async def measure() -> dict[str, float]:
        body = json.dumps({"type": "bench", "padding": "x" * max(0, size - 30)}).encode()
        mark = len(receiver.arrivals)
        todo = iter(range(count))

        async def sender(client: httpx.AsyncClient) -> None:
            for n in todo:
                response = await client.post(
                    f"{url}/hooks/reviewer{n % REVIEWERS}",
                    content=body,
                    headers={"content-type": "application/json"},
                )
                response.raise_for_status()

        async with httpx.AsyncClient(timeout=10) as client:
            await asyncio.gather(*(sender(client) for _ in range(IN_FLIGHT)))
        arrivals = receiver.since(mark)
        span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
        return {"throughput": (len(arrivals) - 1) / span if span else float("nan")}

    return measure


async def run(env: BenchEnv) -> ScenarioResult:
    result = SCENARIO.result()
    items = env.size(100, 20)
    receiver = Receiver()
    async with RecordingHTTPServer(receiver) as server:
        await set_up(env, server.url)
        # one delivery first, to learn the size of a real webhook body for the baseline
        await measure_signoff(env, receiver, 1)()
        size = round(sum(receiver.sizes) / len(receiver.sizes))
        server.requests.clear()
        runs = await alternate(
            env.repeats,
            signoff=measure_signoff(env, receiver, items),
            baseline=measure_httpx(receiver, server.url, items * REVIEWERS, size),
        )
        server.requests.clear()
    await env.close_services()
    baseline = Figure("httpx loop", "1/s", "higher", runs.series("baseline", "throughput"))
    result.add(
        Figure(
            "webhook deliveries/s, one worker",
            "1/s",
            "higher",
            runs.series("signoff", "throughput"),
            baseline=baseline,
            target=Target.ratio_at_least(0.5),
            if_missed=(
                "the worker spends more CPU per delivery than the bare loop per request (see "
                "the worker CPU per delivery below): a batch's claim and record are one "
                "transaction each, but every delivery is rendered, signed and recorded in "
                "Python besides the HTTP request both sides make; profile the worker "
                "(`signoff bench --profile webhooks`)."
            ),
        )
    )
    for key, label, why in (
        (
            "missing",
            "deliveries missing at the receiver",
            "a delivery was not attempted in time: check the worker log.",
        ),
        (
            "not_delivered",
            "deliveries not in state delivered",
            "a delivery failed or is still open: check its attempts.",
        ),
    ):
        result.add(Figure.none_allowed(label, runs.series("signoff", key), why))
    result.add(
        Figure(
            "worker CPU per delivery",
            "ms",
            "lower",
            runs.series("signoff", "worker_cpu_ms_per_delivery"),
        )
    )
    result.parameters = {
        "deliveries per run": f"{items * REVIEWERS:,} ({items} items x {REVIEWERS} reviewers)",
        "body size (bytes)": size,
        "in flight": IN_FLIGHT,
        "workers": 1,
        "order": " ".join(runs.order()),
    }
    result.note(
        "The receiver closes every connection (HTTP/1.1, `connection: close`), so both sides "
        "open a connection per request."
    )
    return result


SCENARIO = Scenario(
    name="webhooks",
    title="- webhook deliveries to a local receiver beside a bare httpx loop",
    run=run,
    description=__doc__ or "",
)
