"""Every error the playground raises, as one tree.

* PlaygroundError
  x ConfigError                   a provider is unknown or has no key; nothing was sent
  x InvalidInputError             the request itself is wrong (prompt, image, a value); nothing was sent
    + UnsupportedParameterError     a provider cannot take a value the request asks for
  x ProviderError                 talking to a provider failed (the request failed)
    + ProviderHTTPError             the provider answered with an error (HTTP status or envelope code)
      - AuthenticationError           401/403: the key was rejected
      - InsufficientCreditsError      402: the account has no credits
      - ValidationError               400/404/409/422: the provider refused the parameters
      - RateLimitError                429: too many requests, carries retry_after_s
      - ProviderUnavailableError      5xx, 455 maintenance
    + ProviderConnectionError       no answer at all (DNS, refused, reset)
      - ProviderTimeoutError          no answer in time
    + UnexpectedResponseError       an answer we could not understand
  x JobError                      the job ran and did not produce an image (the job failed)
    + JobFailedError                the provider reports failure
    + JobModeratedError             refused by content moderation
    + JobCanceledError              canceled by the provider or by us
    + JobTimeoutError               not finished before our deadline; resumable by task id
    + ResultImageError              the result could not be downloaded or is not an image
  x WebhookError                  an incoming callback is forged, stale, replayed or unreadable
  x StoreError                    the history store is locked, corrupt or unusable; says which file and what to do
  x VoteRefusedError              an arena vote that cannot count (round not seen, gone, not yours, too many votes)
    + DuplicateVoteError            this visitor already voted on this round; nothing more was kept

``str(error)`` is one sentence a person can act on. ``code`` is a short machine word
(the provider's own code when it gave one).
"""

from __future__ import annotations

import re


class PlaygroundError(Exception):
    """Root of every error the playground raises on purpose."""

    default_code = "error"

    def __init__(self, message: str, *, provider: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.code = code or self.default_code

    def __str__(self) -> str:
        return self.message


class ConfigError(PlaygroundError):
    """A provider is unknown, or has no key and no sandbox; nothing was sent."""

    default_code = "config"


class InvalidInputError(PlaygroundError):
    """The request is wrong before any provider sees it; nothing was sent."""

    default_code = "invalid_input"


class UnsupportedParameterError(InvalidInputError):
    """A provider cannot take a value the request asks for; nothing was sent."""

    default_code = "unsupported"


class ProviderError(PlaygroundError):
    """Talking to a provider failed: the request failed, not the job."""

    default_code = "provider_error"
    is_retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        code: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        retry_after_s: float | None = None,
    ):
        super().__init__(message, provider=provider, code=code)
        self.status_code = status_code
        self.request_id = request_id
        self.retry_after_s = retry_after_s


class ProviderHTTPError(ProviderError):
    """The provider answered with an error status (in HTTP or inside its envelope)."""

    default_code = "http_error"


class AuthenticationError(ProviderHTTPError):
    default_code = "authentication"


class InsufficientCreditsError(ProviderHTTPError):
    default_code = "insufficient_credits"


class ValidationError(ProviderHTTPError):
    default_code = "validation"


class RateLimitError(ProviderHTTPError):
    default_code = "rate_limit"
    is_retryable = True


class ProviderUnavailableError(ProviderHTTPError):
    default_code = "unavailable"
    is_retryable = True


class ProviderConnectionError(ProviderError):
    default_code = "connection"
    is_retryable = True


class ProviderTimeoutError(ProviderConnectionError):
    default_code = "timeout"


class UnexpectedResponseError(ProviderError):
    """The provider answered, but not in the documented shape."""

    default_code = "unexpected_response"


class JobError(PlaygroundError):
    """The job was accepted but did not produce an image."""

    default_code = "job_failed"

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        code: str | None = None,
        task_id: str | None = None,
    ):
        super().__init__(message, provider=provider, code=code)
        self.task_id = task_id


class JobFailedError(JobError):
    default_code = "job_failed"


class JobModeratedError(JobError):
    default_code = "moderated"


class JobCanceledError(JobError):
    default_code = "canceled"


class JobTimeoutError(JobError):
    default_code = "deadline"


class ResultImageError(JobError):
    default_code = "bad_result"


class WebhookError(PlaygroundError):
    """A callback delivery that must not be trusted: bad signature, stale timestamp, unreadable body."""

    default_code = "webhook_rejected"


class VoteRefusedError(PlaygroundError):
    """An arena vote that is not counted; nothing was kept."""

    default_code = "vote_refused"


ALREADY_VOTED = "You already voted on this round; only your first vote counts. Start the next round."


class DuplicateVoteError(VoteRefusedError):
    """The visitor already voted on this round."""

    default_code = "already_voted"

    def __init__(self, message: str = ALREADY_VOTED) -> None:
        super().__init__(message)


_STATUS_ERRORS: dict[int, type[ProviderHTTPError]] = {
    400: ValidationError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: AuthenticationError,
    404: ValidationError,
    409: ValidationError,
    413: ValidationError,
    415: ValidationError,
    422: ValidationError,
    429: RateLimitError,
    455: ProviderUnavailableError,  # KIE: "service unavailable (maintenance)" [docs/providers.md, KIE AI]
}

_STATUS_WORDS: dict[type[ProviderHTTPError], str] = {
    AuthenticationError: "rejected the API key",
    InsufficientCreditsError: "says the account has insufficient credits",
    ValidationError: "refused the request",
    RateLimitError: "is rate limiting us",
    ProviderUnavailableError: "is unavailable",
    ProviderHTTPError: "answered with an error",
}


def error_class_for_status(status: int) -> type[ProviderHTTPError]:
    """Map an HTTP-like status code (from the status line or an envelope) to an error class."""
    if status in _STATUS_ERRORS:
        return _STATUS_ERRORS[status]
    if status >= 500:
        return ProviderUnavailableError
    return ProviderHTTPError


def error_for_status(
    label: str,
    status: int,
    detail: str | None,
    *,
    provider: str,
    code: str | None = None,
    request_id: str | None = None,
    retry_after_s: float | None = None,
    key_env: str | None = None,
) -> ProviderHTTPError:
    """Build the error for a provider's failure status, as one readable sentence."""
    cls = error_class_for_status(status)
    sentence = f"{label} {_STATUS_WORDS.get(cls, _STATUS_WORDS[ProviderHTTPError])} (HTTP {status})"
    if detail:
        sentence += f": {detail.strip().rstrip('.')}"
    sentence += "."
    if cls is AuthenticationError and key_env:
        sentence += f" Check {key_env}."
    elif cls is RateLimitError and retry_after_s is not None:
        sentence += f" Retry after {retry_after_s:g} s."
    elif cls is InsufficientCreditsError and not re.search(r"top.?up|recharge|add (funds|credits)", detail or "", re.I):
        sentence += f" Top up your {label} account."  # unless the provider already said so
    return cls(
        sentence,
        provider=provider,
        code=code,
        status_code=status,
        request_id=request_id,
        retry_after_s=retry_after_s,
    )


class StoreError(PlaygroundError):
    """The history store cannot keep what it was given: locked by another program, corrupt, or unusable."""

    default_code = "store"
