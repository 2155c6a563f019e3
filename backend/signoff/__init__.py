"""signoff: a backend for human-in-the-loop decision operations."""

__version__ = "0.1.0"
