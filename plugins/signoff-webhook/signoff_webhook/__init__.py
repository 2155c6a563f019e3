"""signoff notification channel ``webhook``: signed JSON POSTs."""

from signoff_webhook.signature import (
    SIGNATURE_HEADER,
    SignatureVerificationError,
    sign,
    verify_signature,
)

__all__ = ["SIGNATURE_HEADER", "SignatureVerificationError", "sign", "verify_signature"]
