"""The channel's tests talk to loopback receivers, which outbound requests refuse unless they
are allow-listed: allow them explicitly."""

from __future__ import annotations

import pytest

from signoff import outbound
from signoff.settings import Settings


@pytest.fixture(autouse=True)
def allow_loopback_receivers() -> None:
    """Allow-list 127.0.0.1 for the receivers these tests start."""
    outbound.configure(Settings(outbound_allow=("127.0.0.1/32",)))
