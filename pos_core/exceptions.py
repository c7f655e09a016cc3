"""Error types of the API, each with its HTTP status and machine-readable code.

Engines and models raise these; the controllers map them once to
``{"error": {"code", "message", "details"}}`` responses.
"""

from __future__ import annotations


class PosApiError(Exception):
    status = 400
    code = "bad_request"
    # True for the rare errors whose side effect must survive (a revocation).
    keep_writes = False

    def __init__(self, message: str, *, code: str | None = None, details=None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details if details is not None else {}

    def to_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidInput(PosApiError):
    status = 422
    code = "invalid_input"


class Unauthorized(PosApiError):
    status = 401
    code = "unauthorized"


class Forbidden(PosApiError):
    status = 403
    code = "forbidden"


class NotFound(PosApiError):
    status = 404
    code = "not_found"


class Conflict(PosApiError):
    status = 409
    code = "conflict"


class PayloadTooLarge(PosApiError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(PosApiError):
    status = 415
    code = "unsupported_media_type"


class ServiceUnavailable(PosApiError):
    """A part of the server the call needs is missing or down."""

    status = 503
    code = "unavailable"


class PaymentDeclined(PosApiError):
    """The terminal declined a payment: nothing is paid, but the failed
    attempt is kept in the audit trail."""

    status = 402
    code = "payment_declined"
    keep_writes = True


class TooManyRequests(PosApiError):
    """A rate limit is exhausted; ``retry_after`` (seconds) is sent as the
    ``Retry-After`` header."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None, details=None):
        super().__init__(message, code=code, details=details)
        self.retry_after = retry_after
