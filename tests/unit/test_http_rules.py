"""The order-entry HTTP rule shared by every venue client: 5xx and transport failures are unknown, never resent."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from arbor.adapters.venues.http_rules import Next, Reply, RetryPolicy, after_attempt, attempt, retry_after_seconds

POLICY = RetryPolicy(max_attempts=3, backoff_base_s=0.5, backoff_max_s=10.0)


@pytest.mark.parametrize("status, failure", [(500, ""), (503, ""), (None, "TimeoutError")])
def test_an_order_whose_answer_is_lost_is_unknown_and_not_resent(status, failure):
    """A 5xx or a transport failure on a non-idempotent request is UNKNOWN at the first attempt."""
    step = after_attempt(POLICY, 0, status=status, failure=failure, retry_unknown=False)
    assert step.next is Next.UNKNOWN and step.attempt == 1


def test_an_idempotent_request_is_retried_with_backoff_then_unknown():
    """A read retries 5xx with exponential backoff until the attempts run out, then reports UNKNOWN."""
    first = after_attempt(POLICY, 0, status=502, retry_unknown=True)
    second = after_attempt(POLICY, first.attempt, status=502, retry_unknown=True)
    third = after_attempt(POLICY, second.attempt, status=502, retry_unknown=True)
    assert (first.next, first.wait_s) == (Next.RETRY, 0.5)
    assert (second.next, second.wait_s) == (Next.RETRY, 1.0)
    assert third.next is Next.UNKNOWN


def test_rate_limit_waits_retry_after_when_longer_than_backoff():
    """A 429 waits the venue's Retry-After when it is longer than the backoff."""
    step = after_attempt(POLICY, 0, status=429, retry_after="4", retry_unknown=False)
    assert (step.next, step.wait_s) == (Next.RETRY, 4.0)


def test_rate_limit_gives_up_past_the_longest_wait():
    """A Retry-After beyond the policy's longest wait is given up on at once."""
    assert after_attempt(POLICY, 0, status=429, retry_after="3600", retry_unknown=False).next is Next.RATE_LIMITED
    assert after_attempt(POLICY, 0, status=429, retry_after="inf", retry_unknown=False).next is Next.RATE_LIMITED


def test_only_the_named_rate_limit_statuses_count():
    """418 is a rate limit only for a client that names it (Binance's ban)."""
    assert after_attempt(POLICY, 0, status=418, retry_unknown=False).next is Next.ANSWERED
    binance = frozenset({429, 418})
    assert after_attempt(POLICY, 0, status=418, retry_unknown=False, rate_limit_statuses=binance).next is Next.RETRY


def test_a_4xx_is_an_answer():
    """A client error is an answer for the caller to read, with no attempt counted."""
    assert after_attempt(POLICY, 2, status=400, retry_unknown=False) == after_attempt(POLICY, 2, status=200,
                                                                                       retry_unknown=False)


@pytest.mark.parametrize("header, seconds", [(None, 0.0), ("", 0.0), ("x", 0.0), ("-3", 0.0), ("nan", 0.0), ("2.5", 2.5)])
def test_retry_after_reads_seconds(header, seconds):
    """Retry-After is read as seconds; unreadable, negative or NaN values count as none."""
    assert retry_after_seconds(header) == seconds


def _scripted(*answers):
    """A send_once that gives ``answers`` in turn (an exception instance is raised) and counts its calls."""
    sent: list[int] = []

    async def send_once() -> Reply:
        answer = answers[len(sent)]
        sent.append(1)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return send_once, sent


def _run(send_once, *, retry_unknown: bool, **kwargs):
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    return asyncio.run(attempt(send_once, POLICY, sleep, retry_unknown=retry_unknown, **kwargs)), slept


def test_the_attempt_loop_sends_an_order_once_when_its_fate_is_unknown():
    """An order answered 503 is sent once and reported UNKNOWN: the loop never resends it."""
    send_once, sent = _scripted(Reply(status=503, text="busy"), Reply(status=200, text="{}"))
    outcome, slept = _run(send_once, retry_unknown=False)
    assert outcome.step.next is Next.UNKNOWN and len(sent) == 1 and slept == []


def test_the_attempt_loop_retries_a_read_through_transport_failures_with_backoff():
    """A read that times out, then loses its connection, then is answered, is sent three times with 0.5 s and 1 s waits."""
    send_once, sent = _scripted(TimeoutError(), aiohttp.ClientConnectionError(), Reply(status=200, text='{"ok":1}'))
    outcome, slept = _run(send_once, retry_unknown=True)
    assert outcome.step.next is Next.ANSWERED and (outcome.status, outcome.text) == (200, '{"ok":1}')
    assert len(sent) == 3 and slept == [0.5, 1.0]


def test_the_attempt_loop_waits_out_a_rate_limit_and_says_so():
    """A 429 with Retry-After 4 is waited out (4 s, reported to on_rate_limited) and the request sent again."""
    heard = []
    send_once, sent = _scripted(Reply(status=429, text="", retry_after="4"), Reply(status=200, text="{}"))
    outcome, slept = _run(send_once, retry_unknown=False, on_rate_limited=heard.append)
    assert outcome.step.next is Next.ANSWERED and len(sent) == 2 and slept == [4.0]
    assert [step.wait_s for step in heard] == [4.0]
