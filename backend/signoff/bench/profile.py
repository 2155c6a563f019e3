"""Sampling profiles of the processes a scenario starts (`signoff bench --profile`).

py-spy (install it separately: `pip install py-spy`) attaches to each `signoff serve` and
`signoff worker` process by pid and writes collapsed stacks when the process exits; the
summary lists where the samples fell. Profiled runs are for finding the slow path, not for
the report's figures: sampling costs the profiled process a little CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


async def attach(pid: int, output: Path) -> asyncio.subprocess.Process:
    """Start py-spy sampling process `pid` into `output` (collapsed stacks)."""
    exe = shutil.which("py-spy")
    if exe is None:
        raise RuntimeError("--profile needs py-spy on the PATH (pip install py-spy)")
    return await asyncio.create_subprocess_exec(
        exe,
        "record",
        "--pid",
        str(pid),
        "--rate",
        "100",
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(output),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def finish(profiler: asyncio.subprocess.Process, grace: float = 30.0) -> None:
    """Wait for py-spy to write its output after its target exited (kill it if it hangs)."""
    try:
        await asyncio.wait_for(profiler.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            profiler.kill()
        await profiler.wait()


def _label(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match.group("file")
    for marker in ("site-packages/", "backend/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('func')} ({path})"


def summarize(stacks: Path, top: int = 25) -> str:
    """The functions the samples fell in: share of samples inside (inclusive) and on top (self)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in stacks.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_label(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for label in set(frames):
            inclusive[label] += count
    if total == 0:
        return f"{stacks.name}: no samples\n"
    lines = [f"{stacks.name}: {total} samples", "", "inclusive  self  function"]
    for label, count in inclusive.most_common(top):
        lines.append(f"{count / total:8.1%} {own[label] / total:6.1%}  {label}")
    lines += ["", "self-time leaders:"]
    for label, count in own.most_common(top):
        lines.append(f"{count / total:6.1%}  {label}")
    return "\n".join(lines) + "\n"
