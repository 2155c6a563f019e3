"""`free_port`: a port for a server a test starts in another process, that no other process
(another suite's, on a shared machine) takes between the pick and the server's bind."""

from __future__ import annotations

import subprocess
import sys

from signoff.testing import claim_port, ephemeral_ports, free_port


def _in_a_child(code: str) -> str:
    ran = subprocess.run(
        [sys.executable, "-c", f"from signoff.testing import claim_port, free_port\n{code}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return ran.stdout.strip()


def test_ports_are_outside_the_range_outgoing_connections_take_and_never_handed_out_twice():
    low, high = ephemeral_ports()
    ports = [free_port() for _ in range(40)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= port < low for port in ports), (low, high, ports)


def test_a_port_handed_out_here_is_refused_to_every_other_process_while_this_one_lives():
    ports = [free_port() for _ in range(5)]
    claimed = _in_a_child(f"print([claim_port(p) for p in {ports}])")
    assert claimed == str([False] * 5)
    others = _in_a_child("print(sorted(free_port() for _ in range(40)))")
    assert not set(ports) & set(eval(others))  # noqa: S307 - a list of ints we printed


def test_a_claim_ends_with_its_process():
    port = int(_in_a_child("print(free_port())"))
    assert claim_port(port)
