"""Live updates: cross-process fan-out of committed events, replayed by cursor."""

from signoff.realtime.hub import RealtimeHub

__all__ = ["RealtimeHub"]
