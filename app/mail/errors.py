from __future__ import annotations


class MailError(Exception):
    """The backend did not accept the message.

    `permanent` errors (a bad address, a rejected payload) must not be retried; the others
    (rate limits, provider outages) should be, after `retry_after` seconds if given.
    `uncertain`: the request may have reached the provider (a timeout while waiting for the
    answer): retrying could send the email twice, so callers wait for the provider's events.
    """

    def __init__(self, message: str, *, permanent: bool, retry_after: float | None = None,
                 status: int | None = None, uncertain: bool = False):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.status = status
        self.uncertain = uncertain
