"""The machine a benchmark ran on: CPU, cores, memory, and the versions that matter."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(  # noqa: S603 - fixed arguments
        ["git", "-C", str(repo), *args],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=5,
        check=True,
    ).stdout.strip()


def _commit(repo: Path) -> str:
    try:
        head = _git(repo, "rev-parse", "--short", "HEAD")
        dirty = _git(repo, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


async def describe_machine(admin_url: str, redis_url: str, repo: Path) -> dict[str, Any]:
    """CPU model, cores, memory, PostgreSQL/Redis/Python versions and the code's commit."""
    conn = await asyncpg.connect(admin_url)
    try:
        pg_version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    client = aioredis.Redis.from_url(redis_url)
    try:
        redis_version = (await client.info("server")).get("redis_version", "unknown")
    finally:
        await client.aclose()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(terse=True),
        "postgresql": str(pg_version),
        "redis": str(redis_version),
        "python": platform.python_version(),
        "commit": _commit(repo),
    }


def machine_line(machine: dict[str, Any]) -> str:
    """One readable line describing the machine."""
    return (
        f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
        f"{machine.get('memory_gib', '?')} GiB; PostgreSQL {machine.get('postgresql', '?')}, "
        f"Redis {machine.get('redis', '?')}, Python {machine.get('python', '?')}; "
        f"{machine.get('os', '?')}; commit {machine.get('commit', '?')}"
    )
