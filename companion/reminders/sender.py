"""The push Sender: encrypts and signs on the calling thread, posts on its own event-loop
thread (transport.py), caches VAPID headers per push service."""

import concurrent.futures
import threading
import time
import weakref
from typing import Any, NamedTuple

from py_vapid import Vapid

from companion.reminders.push import (
    URGENCIES,
    Outcome,
    check_subject,
    is_private_endpoint,
    load_private_key,
    origin,
    public_key_text,
    topic_header,
)
from companion.reminders.transport import UNSENDABLE, EncryptedPusher, Loop, Request, Session

JWT_LIFETIME = 12 * 3600  # a VAPID JWT may live up to 24 h; renewed an hour before it ends
JWT_RENEW_BEFORE = 3600
_HAND_OVER = 8  # send_many hands requests to the loop thread in chunks this size


class PushJob(NamedTuple):
    """One message for one device; its key comes back beside its Outcome."""

    key: Any
    subscription: dict[str, str]
    payload: bytes
    ttl: int
    urgency: str = "normal"
    topic: str | None = None


def _check_job(job: PushJob) -> None:
    """Raise ValueError for a caller's mistake (not the push service's answer)."""
    if isinstance(job.ttl, bool) or not isinstance(job.ttl, int) or job.ttl < 0:
        raise ValueError("ttl must be a whole number of seconds >= 0")
    if not isinstance(job.payload, bytes) or not job.payload:
        raise ValueError("payload must be non-empty bytes: every push shows a notification")
    if job.urgency not in URGENCIES:
        raise ValueError(f"urgency must be one of {URGENCIES}")


class Sender:
    """Send encrypted, VAPID-signed pushes with pywebpush's WebPusher.send_async.

    Thread-safe: send() and send_many() may be called from any threads at once. The
    calling thread encrypts; one private event-loop thread posts over one aiohttp session,
    at most max_workers requests at once (an asyncio.Semaphore) and at most pool_size per
    push service. The thread starts on first use and stops in close().
    """

    def __init__(
        self,
        vapid_private_pem: str,
        subject: str,
        timeout: float = 10.0,
        pool_size: int = 32,
        max_workers: int = 16,
        allow_private: bool = False,
    ) -> None:
        check_subject(subject)
        if max_workers < 1 or pool_size < 1:
            raise ValueError("max_workers and pool_size must be at least 1")
        self.subject = subject
        self.timeout = timeout
        self.pool_size = pool_size
        self.max_workers = max_workers  # requests in flight at once (the name predates asyncio)
        # False: endpoints on local, private or reserved addresses are refused at send
        # time, by name as written and by what the name resolves to (transport.py).
        self.allow_private = allow_private
        key = load_private_key(vapid_private_pem)
        self.public_key = public_key_text(key)
        self._vapid = Vapid(key)
        self._lock = threading.Lock()
        self._vapid_cache: dict[str, tuple[dict[str, str], int]] = {}
        self.signings = 0
        self._loop: Loop | None = None
        self._finalizer: weakref.finalize | None = None

    def vapid_headers(self, endpoint: str, now: float | None = None) -> dict[str, str]:
        """Return the Authorization header for endpoint's origin, signing when stale."""
        return self._vapid_headers(origin(endpoint), now)

    def _vapid_headers(self, origin: str, now: float | None) -> dict[str, str]:
        now = time.time() if now is None else now
        with self._lock:
            cached = self._vapid_cache.get(origin)
            if cached and now < cached[1] - JWT_RENEW_BEFORE:
                return cached[0]
            # Fresh claims per origin: pywebpush writes aud into a reused dict (a stale aud).
            exp = int(now) + JWT_LIFETIME
            headers = self._vapid.sign({"sub": self.subject, "aud": origin, "exp": exp})
            self._vapid_cache[origin] = (headers, exp)
            self.signings += 1
            return headers

    def _prepare(self, job: PushJob, session: Session, now: float | None) -> Request | Outcome:
        """Encrypt and sign one message; a subscription that cannot be sent to is an Outcome."""
        started = time.perf_counter()
        try:
            service = origin(job.subscription["endpoint"])
            if not self.allow_private and is_private_endpoint(job.subscription["endpoint"]):
                outcome = Outcome("failed", None, None, "refused: a local or private address")
                outcome.elapsed_ms = (time.perf_counter() - started) * 1000
                return outcome
            pusher = EncryptedPusher(job.subscription, session, job.payload)
            headers = {
                **self._vapid_headers(service, now),
                "Urgency": job.urgency,
                "Content-Type": "application/octet-stream",
            }
            if job.topic:
                headers["Topic"] = topic_header(job.topic)
        except UNSENDABLE as exc:
            outcome = Outcome("failed", None, None, f"cannot send: {str(exc)[:200]}")
            outcome.elapsed_ms = (time.perf_counter() - started) * 1000
            return outcome
        prepare_ms = (time.perf_counter() - started) * 1000
        return Request(pusher, job.payload, headers, job.ttl, service, now, prepare_ms)

    def _enter(self) -> Loop:
        """The running loop (started on first use), counted as in use until its leave()."""
        with self._lock:
            loop = self._loop
            if loop is None:
                per_origin = self.pool_size if self.pool_size < self.max_workers else 0
                loop = self._loop = Loop(
                    self.max_workers, per_origin, self.timeout, self.allow_private
                )
                self._finalizer = weakref.finalize(self, loop.close)
            loop.enter()
        if threading.get_ident() == loop.thread.ident:
            loop.leave()
            raise RuntimeError("Sender methods block: do not call them on its own loop thread")
        return loop

    def send(
        self,
        subscription: dict[str, str],
        payload: bytes,
        ttl: int,
        urgency: str = "normal",
        topic: str | None = None,
        now: float | None = None,
    ) -> Outcome:
        """Encrypt and send one message; every push-service problem becomes an Outcome."""
        job = PushJob(None, subscription, payload, ttl, urgency, topic)
        _check_job(job)
        [(_, outcome)] = self._send_all([job], now)
        return outcome

    def send_many(self, jobs: list[PushJob] | list[tuple]) -> list[tuple[Any, Outcome]]:
        """Send PushJobs (key, subscription, payload, ttl, urgency, topic) concurrently.

        Returns (key, Outcome) in input order. A caller's mistake (bad ttl, urgency or
        payload) raises ValueError before anything is sent.
        """
        jobs = [PushJob(*job) for job in jobs]
        for job in jobs:
            _check_job(job)
        return self._send_all(jobs, None) if jobs else []

    def _send_all(self, jobs: list[PushJob], now: float | None) -> list[tuple[Any, Outcome]]:
        """Encrypt here, post on the loop thread: chunks go over while the rest is encrypted."""
        results: list[Any] = [None] * len(jobs)
        handed: list[tuple[list[int], concurrent.futures.Future]] = []
        loop = self._enter()
        try:
            indexes, chunk = [], []
            for index, job in enumerate(jobs):
                request = self._prepare(job, loop.session, now)
                if isinstance(request, Outcome):
                    results[index] = request
                    continue
                indexes.append(index)
                chunk.append(request)
                if len(chunk) == _HAND_OVER:
                    handed.append((indexes, loop.run(loop.post_all(chunk))))
                    indexes, chunk = [], []
            if chunk:
                handed.append((indexes, loop.run(loop.post_all(chunk))))
        finally:
            concurrent.futures.wait([future for _, future in handed])
            loop.leave()
        for indexes, future in handed:
            for index, outcome in zip(indexes, future.result(), strict=True):
                results[index] = outcome
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [(job.key, outcome) for job, outcome in zip(jobs, results, strict=True)]

    def close(self) -> None:
        """Wait for sends in progress, close pooled connections and stop the loop thread.

        Idempotent; a Sender used again after close() starts a new thread.
        """
        with self._lock:
            finalizer, self._finalizer, self._loop = self._finalizer, None, None
        if finalizer is not None:
            finalizer()  # loop.close(), once

    def __enter__(self) -> "Sender":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
