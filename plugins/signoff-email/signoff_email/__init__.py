"""signoff notification channel ``email``: SMTP via the standard library, threaded per item."""

from signoff_email.message import build_message, thread_root_id

__all__ = ["build_message", "thread_root_id"]
