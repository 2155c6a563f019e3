"""signoff notification channel ``slack``: Block Kit messages with Approve/Reject buttons."""

from signoff_slack.interactions import (
    APPROVE_ACTION_ID,
    REJECT_ACTION_ID,
    parse_block_actions,
    verify_slack_signature,
)

__all__ = [
    "APPROVE_ACTION_ID",
    "REJECT_ACTION_ID",
    "parse_block_actions",
    "verify_slack_signature",
]
