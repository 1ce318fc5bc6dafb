"""When a reminder is tried again: backoff, push services that are down (their messages
wait; one probe goes out), and what a row comes to after an attempt. No SQL: the
dispatcher calls these."""

import random
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from companion.db import parse_iso
from companion.reminders.planning import out_of_quiet
from companion.reminders.protocol import parse_hhmm
from companion.reminders.push import Outcome
from companion.reminders.sender import PushJob, Sender

NO_DEVICE = "no subscribed device (shown in the app's inbox)"
ALL_GONE = "every device unsubscribed (shown in the app's inbox)"
EXPIRED = "expired before it could be sent"
QUIET = "past its validity by the end of the client's quiet hours"


@dataclass
class Settings:
    batch: int = 500
    lease_seconds: int = 120
    max_attempts: int = 6
    base_backoff: float = 30.0  # seconds; doubles per attempt, with jitter
    max_backoff: float = 3600.0
    # A push service that answered this many different devices in a row with 5xx or
    # nothing is down: its messages wait without spending attempts, and one probe goes
    # out per interval (doubling from probe_backoff to max_probe_backoff).
    outage_devices: int = 3
    probe_backoff: float = 5.0
    max_probe_backoff: float = 60.0

    @property
    def retry_span(self) -> float:
        """Seconds a row's retries take at most before it fails (the backoffs' ceilings)."""
        return sum(
            min(self.max_backoff, self.base_backoff * 2 ** (attempt - 1))
            for attempt in range(1, self.max_attempts)
        )


def backoff(attempt: int, settings: Settings, retry_after: float | None) -> float:
    """Exponential backoff, jittered over its upper half, never sooner than asked (Retry-After)."""
    ceiling = min(settings.max_backoff, settings.base_backoff * 2 ** (attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


def after_quiet_hours(client: dict, now: datetime) -> datetime:
    """Return the first moment from now outside the client's quiet hours (now if outside).

    Planning already moves steps out of quiet hours; this re-checks at send time, for a
    row due in the past when planned (a session recorded the morning after) or retried.
    """
    start, end = client["quiet_start"], client["quiet_end"]
    if start is None or end is None or start == end:
        return now
    # planning's own rule (DST gaps and repeated hours included), applied to `now`.
    quiet = (parse_hhmm(start), parse_hhmm(end))
    return out_of_quiet(now, ZoneInfo(client["timezone"]), quiet)


# -- push services that are down ---------------------------------------------------------


@dataclass
class Service:
    """What this sender has seen of one push service (an endpoint origin) lately."""

    failing: set[int] = field(default_factory=set)  # devices answered 5xx/nothing since
    down_until: datetime | None = None  # set: down; messages wait, then one probe goes out
    down_since: datetime | None = None
    probes: int = 0
    reason: str = ""


# Kept per Sender (one per dispatcher) and dropped with it.
_services: "weakref.WeakKeyDictionary[object, dict[str, Service]]" = weakref.WeakKeyDictionary()


def services_for(sender: object) -> dict[str, Service]:
    """The push services this sender has seen failing, by origin."""
    return _services.setdefault(sender, {})


def is_outage(outcome: Outcome) -> bool:
    """A 5xx or no answer: says more about the push service than about the device."""
    return outcome.kind == "retry" and (outcome.status is None or outcome.status >= 500)


def observe(
    services: dict[str, Service],
    answers: list[tuple[str, int, Outcome]],
    now: datetime,
    settings: Settings,
) -> None:
    """Mark push services down after enough failing devices in a row, up on any answer.

    answers are (push service origin, subscription id, Outcome).
    """
    seen: dict[str, list[tuple[int, Outcome]]] = {}
    for origin, subscription_id, outcome in answers:
        seen.setdefault(origin, []).append((subscription_id, outcome))
    for origin, found in seen.items():
        failing = [(sub_id, o) for sub_id, o in found if is_outage(o)]
        if len(failing) < len(found):  # it answered someone: it is up
            services.pop(origin, None)
            continue
        service = services.setdefault(origin, Service())
        service.failing.update(sub_id for sub_id, _ in failing)
        service.reason = failing[0][1].reason
        if service.down_until is not None or len(service.failing) >= settings.outage_devices:
            wait = min(settings.max_probe_backoff, settings.probe_backoff * 2**service.probes)
            asked = max((o.retry_after or 0.0) for _, o in failing)
            service.down_until = now + timedelta(seconds=max(wait, asked))
            service.down_since = service.down_since or now
            service.probes += 1


def is_down(services: dict[str, Service], origin: str) -> bool:
    service = services.get(origin)
    return service is not None and service.down_until is not None


def down_too_long(services: dict[str, Service], origins: set[str], now, settings) -> bool:
    """Every one of these push services has been down as long as a row's retries take: a
    row waiting only for them fails, so that it goes by email where it may (not at expiry)."""
    return bool(origins) and all(
        services[o].down_since is not None
        and (now - services[o].down_since).total_seconds() >= settings.retry_span
        for o in origins
    )


def send_unless_down(
    sender: Sender,
    jobs: list[PushJob],
    services: dict[str, Service],
    now: datetime,
    settings: Settings,
) -> tuple[list[tuple[Any, Outcome]], list[PushJob]]:
    """Send jobs, except to push services that are down: one probe each when it is time.

    Each job's key is the dispatcher's Target (row_id, subscription_id, service).
    Returns (results, waiting): waiting are the jobs not sent because their push
    service is down.
    """
    ready, probes, waiting = [], {}, []
    for job in jobs:
        service = services.get(job.key.service)
        if service is None or service.down_until is None:
            ready.append(job)
        elif service.down_until <= now and job.key.service not in probes:
            probes[job.key.service] = job
        else:
            waiting.append(job)
    results = []
    if probes:
        results = sender.send_many(list(probes.values()))
        observe(services, _answers(results), now, settings)
        still = []
        for job in waiting:
            (ready if services.get(job.key.service) is None else still).append(job)
        waiting = still
    sent = sender.send_many(ready) if ready else []
    observe(services, _answers(sent), now, settings)
    return results + sent, waiting


def _answers(results: list[tuple[Any, Outcome]]) -> list[tuple[str, int, Outcome]]:
    return [(target.service, target.subscription_id, o) for target, o in results]


# -- what a row comes to ----------------------------------------------------------------------


def decide(
    row: dict,
    attempt: int,
    outcomes: list[Outcome],
    retry: list[Outcome],
    wait_until: datetime | None,
    why: str,
    delivered: bool,
    now: datetime,
    settings: Settings,
) -> tuple[str, str | None, datetime | None]:
    """Return (status, reason, next attempt) for a row; 'retry'/'waiting' go back to pending."""
    next_at = wait_until
    if retry and attempt < settings.max_attempts:
        retry_after = max((o.retry_after or 0.0) for o in retry)
        at = now + timedelta(seconds=backoff(attempt, settings, retry_after))
        next_at = min(next_at, at) if next_at else at
    if next_at is not None and next_at < parse_iso(row["expires_at"]):
        if retry:
            return "retry", f"retrying: {why}", next_at
        return "waiting", f"waiting for the push service: {why}", next_at
    if delivered:  # on some device; the others could not be reached
        return "sent", None, None
    if next_at is not None:
        if attempt == 0:
            return "skipped", EXPIRED, None
        return "failed", f"expired while retrying: {why}", None
    if retry:
        return "failed", f"gave up after {attempt} attempts: {why}", None
    if not outcomes and not row["attempts"]:
        return "skipped", NO_DEVICE, None
    if all(o.kind == "gone" for o in outcomes):
        return "skipped", ALL_GONE, None
    failed = [o for o in outcomes if o.kind == "failed"]
    return "failed", (failed[0].reason if failed else "not delivered"), None
