"""The one rule every venue's HTTP client follows after an attempt, so the safety part lives once.

A request that failed in transport (timeout, connection error) or got a 5xx may have been acted
on by the venue: the order's fate is UNKNOWN. It is resent only when the caller says resending
is harmless (``retry_unknown``: reads, and actions the venue de-duplicates); otherwise it is
reported UNKNOWN and settled by a query, never resent blindly. A rate-limit answer (429, and
Binance's 418 ban) is waited out with ``Retry-After`` (or the backoff, whichever is longer) as long
as the attempts and the wait stay within the policy; past that the caller gives up on it.
Anything else is an answer for the caller to read. ``attempt`` is the loop both clients send
through, so the rule is applied the same way everywhere.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import attrs


class Next(enum.Enum):
    ANSWERED = "answered"  # read the body
    RETRY = "retry"  # wait ``wait_s``, then send the same request again
    UNKNOWN = "unknown"  # the venue may have acted: report the outcome as unknown, never resend
    RATE_LIMITED = "rate_limited"  # still limited after the policy's attempts or longest wait


@attrs.frozen(kw_only=True)
class Step:
    next: Next
    attempt: int  # attempts counted so far (the caller keeps it for the next call)
    wait_s: float = 0.0
    reason: str = ""


@attrs.frozen(kw_only=True)
class RetryPolicy:
    max_attempts: int
    backoff_base_s: float
    backoff_max_s: float

    def backoff(self, attempt: int) -> float:
        """Exponential backoff for the ``attempt``-th failure (1-based), capped at ``backoff_max_s``."""
        return float(min(self.backoff_base_s * 2 ** (attempt - 1), self.backoff_max_s))


def after_attempt(
    policy: RetryPolicy,
    attempt: int,
    *,
    status: int | None,
    failure: str = "",
    retry_after: str | None = None,
    retry_unknown: bool,
    rate_limit_statuses: frozenset[int] = frozenset({429}),
) -> Step:
    """What to do after one attempt: ``status`` is the HTTP status, or None when ``failure`` (transport) happened."""
    if status is None or status >= 500:
        attempt += 1
        reason = failure if status is None else f"http {status}"
        if retry_unknown and attempt < policy.max_attempts:
            return Step(next=Next.RETRY, attempt=attempt, wait_s=policy.backoff(attempt), reason=reason)
        return Step(next=Next.UNKNOWN, attempt=attempt, reason=reason)
    if status in rate_limit_statuses:
        attempt += 1
        wait = max(retry_after_seconds(retry_after), policy.backoff(attempt))
        reason = f"http {status}, Retry-After {retry_after}"
        if attempt >= policy.max_attempts or wait > policy.backoff_max_s:
            return Step(next=Next.RATE_LIMITED, attempt=attempt, wait_s=wait, reason=reason)
        return Step(next=Next.RETRY, attempt=attempt, wait_s=wait, reason=reason)
    return Step(next=Next.ANSWERED, attempt=attempt)


@attrs.frozen(kw_only=True)
class Reply:
    """One HTTP answer as the attempt loop needs it."""

    status: int
    text: str
    retry_after: str | None = None


@attrs.frozen(kw_only=True)
class Outcome:
    """Where the attempts ended: ``step.next`` is ANSWERED (read ``status`` and ``text``), UNKNOWN or RATE_LIMITED."""

    step: Step
    status: int | None = None
    text: str = ""


async def attempt(
    send_once: Callable[[], Awaitable[Reply]],
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[Any]],
    *,
    retry_unknown: bool,
    rate_limit_statuses: frozenset[int] = frozenset({429}),
    on_rate_limited: Callable[[Step], None] | None = None,
) -> Outcome:
    """Send with ``send_once`` (which raises TimeoutError or aiohttp.ClientError on a transport
    failure) until ``after_attempt`` says the request is answered, unknown or rate limited; every
    wait it asks for is slept with ``sleep``, and ``on_rate_limited`` hears each rate-limit retry."""
    count = 0
    while True:
        try:
            reply = await send_once()
        except (TimeoutError, aiohttp.ClientError) as exc:
            status, text, retry_after, failure = None, "", None, type(exc).__name__
        else:
            status, text, retry_after, failure = reply.status, reply.text, reply.retry_after, ""
        step = after_attempt(policy, count, status=status, failure=failure, retry_after=retry_after,
                             retry_unknown=retry_unknown, rate_limit_statuses=rate_limit_statuses)
        count = step.attempt
        if step.next is not Next.RETRY:
            return Outcome(step=step, status=status, text=text)
        if status in rate_limit_statuses and on_rate_limited is not None:
            on_rate_limited(step)
        await sleep(step.wait_s)


def retry_after_seconds(header: str | None) -> float:
    """A ``Retry-After`` header in seconds: 0 when absent, unreadable, negative or NaN; "inf" waits forever."""
    try:
        value = float(header) if header is not None else 0.0
    except ValueError:
        return 0.0
    return 0.0 if math.isnan(value) else max(0.0, value)
