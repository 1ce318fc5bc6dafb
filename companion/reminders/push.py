"""Web Push with VAPID: keys, subscription checks, payloads, and one sender that
turns every push-service answer into an Outcome."""

import asyncio
import base64
import collections
import functools
import hashlib
import ipaddress
import json
import os
import re
import socket
import ssl
import threading
import time
import weakref
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from http_ece import ECEException
from py_vapid import Vapid, VapidException
from pywebpush import WebPushException
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_environ_proxies, select_proxy

URGENCIES = ("very-low", "low", "normal", "high")
MAX_ENDPOINT_LENGTH = 2048
MAX_PAYLOAD_BYTES = 3000  # the encrypted record must stay under 4096 bytes
JWT_LIFETIME = 12 * 3600
JWT_RENEW_BEFORE = 3600
MAX_REPLY_BYTES = 64 * 1024  # of a push service's answer body; only its start becomes a reason
_HAND_OVER = 8  # send_many hands requests to the loop thread in chunks this size
DISCREET_TITLE = "Companion"
DISCREET_BODY = "New aftercare reminder"

_B64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")
_PRIVATE_SUFFIXES = (".localhost", ".local", ".internal")
_PLACEHOLDER_DOMAINS = ("example.com", "example.org", "example.net", "localhost")
_PLACEHOLDER_SUFFIXES = (".example", ".invalid", ".localhost")
_PLACEHOLDER_MAILBOXES = {"you", "your", "yourname", "your-name", "your-email", "your.email"}
# A corrupt stored subscription or a refused claim: retrying cannot help.
_UNSENDABLE = (WebPushException, VapidException, ECEException, ValueError, TypeError, KeyError)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes | None:
    """Decode base64url with or without padding; None when it is not base64url."""
    if not _B64URL.fullmatch(text):
        return None
    text = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:  # binascii.Error, e.g. a length of 4n+1
        return None


def _public_key_text(key: ec.EllipticCurvePrivateKey) -> str:
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return _b64url(point)


def _load_private_key(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("the VAPID key must be a P-256 (secp256r1) EC private key")
    return key


def generate_vapid_keys() -> tuple[str, str]:
    """Return a new (private key PEM, public application server key) pair."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode("ascii"), _public_key_text(key)


def public_key_from_private(pem: str) -> str:
    """Return the application server key (base64url point) for a private key PEM."""
    return _public_key_text(_load_private_key(pem))


def _is_private_host(host: str) -> bool:
    """Whether host names a local or non-public address, judged without DNS."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(_PRIVATE_SUFFIXES):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        # Names like "127.1" or "2130706433" are IPv4 to the resolver: no real TLD is numeric.
        last_label = host.rsplit(".", 1)[-1]
        if not (last_label.isdigit() or last_label.startswith("0x")):
            return False
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return True  # numeric yet unparseable: refuse rather than guess
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast or address.is_reserved


def _check_endpoint(endpoint: object, allow_private: bool) -> str | None:
    """Return why endpoint is unacceptable, or None."""
    if not isinstance(endpoint, str) or not endpoint:
        return "must be a URL string"
    if len(endpoint) > MAX_ENDPOINT_LENGTH:
        return f"must be at most {MAX_ENDPOINT_LENGTH} characters"
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in endpoint) or not endpoint.isascii():
        return "must not contain spaces, control or non-ASCII characters"
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "is not a valid URL"
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        return "must be an https URL"
    if not parts.hostname:
        return "must have a host"
    if "@" in parts.netloc:
        return "must not contain credentials"
    if not allow_private and _is_private_host(parts.hostname):
        return "must be a public push service, not a local or private address"
    return None


def validate_subscription(
    data: object, allow_private: bool
) -> tuple[dict[str, str] | None, dict[str, str]]:
    """Check a PushSubscription.toJSON() object; return (subscription, errors)."""
    if not isinstance(data, dict):
        return None, {"subscription": "must be a JSON object"}
    errors: dict[str, str] = {}
    problem = _check_endpoint(data.get("endpoint"), allow_private)
    if problem:
        errors["endpoint"] = f"endpoint {problem}"
    expiration = data.get("expirationTime")
    if expiration is not None and (
        isinstance(expiration, bool) or not isinstance(expiration, int | float)
    ):
        errors["expirationTime"] = "expirationTime must be null or a number"
    keys = data.get("keys")
    if not isinstance(keys, dict):
        errors["keys"] = "keys must be an object with p256dh and auth"
        return None, errors
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    point = _b64url_decode(p256dh) if isinstance(p256dh, str) else None
    if point is None:
        errors["keys.p256dh"] = "keys.p256dh must be a base64url string"
    elif len(point) != 65 or point[0] != 4:
        errors["keys.p256dh"] = "keys.p256dh must be a 65-byte uncompressed P-256 point"
    else:
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        except ValueError:
            errors["keys.p256dh"] = "keys.p256dh is not a point on the P-256 curve"
    secret = _b64url_decode(auth) if isinstance(auth, str) else None
    if secret is None:
        errors["keys.auth"] = "keys.auth must be a base64url string"
    elif len(secret) != 16:
        errors["keys.auth"] = "keys.auth must decode to exactly 16 bytes"
    if errors:
        return None, errors
    return {"endpoint": data["endpoint"], "p256dh": _b64url(point), "auth": _b64url(secret)}, {}


def _encode(message: dict) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def build_payload(
    title: str, body: str, url: str, tag: str, notification_id: int, discreet: bool = False
) -> bytes:
    """Encode a notification for the service worker, trimming the body to fit."""
    if discreet:
        title, body = DISCREET_TITLE, DISCREET_BODY
    message = {"title": title[:120], "body": body, "url": url, "tag": tag, "id": notification_id}
    encoded = _encode(message)
    if len(encoded) > MAX_PAYLOAD_BYTES:
        # Longest body prefix that fits; JSON escapes make byte arithmetic unreliable.
        low, high = 0, len(body)
        while low < high:
            middle = (low + high + 1) // 2
            if len(_encode({**message, "body": body[:middle] + "…"})) <= MAX_PAYLOAD_BYTES:
                low = middle
            else:
                high = middle - 1
        message["body"] = body[:low] + "…"
        encoded = _encode(message)
        if len(encoded) > MAX_PAYLOAD_BYTES:
            raise ValueError("notification too large even without a body")
    return encoded


@dataclass
class Outcome:
    """What one push attempt came to."""

    kind: Literal["delivered", "gone", "retry", "failed"]
    status: int | None
    retry_after: float | None = None
    reason: str = ""
    elapsed_ms: float = 0.0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Return Retry-After (delta-seconds or HTTP-date) as seconds from now."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def classify(
    status: int | None,
    headers: Any = None,
    error: str | None = None,
    body: str = "",
    now: float | None = None,
) -> Outcome:
    """Turn a push service's answer (or the lack of one) into an Outcome."""
    if status is None:
        return Outcome("retry", None, None, error or "no response")
    if status in (200, 201, 202):
        return Outcome("delivered", status)
    text = " ".join(body.split())[:200]
    reason = f"HTTP {status}: {text}" if text else f"HTTP {status}"
    if status in (404, 410):
        return Outcome("gone", status, None, reason)
    if status == 429 or 500 <= status <= 599:
        retry_after = parse_retry_after((headers or {}).get("Retry-After"), now)
        return Outcome("retry", status, retry_after, reason)
    return Outcome("failed", status, None, reason)


def _origin(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}".lower()


def topic_header(topic: str) -> str:
    """Return topic if it is a valid Topic header, else a stable 32-char digest of it."""
    if _TOPIC.fullmatch(topic):
        return topic
    return _b64url(hashlib.sha256(topic.encode()).digest())[:32]


def check_subject(subject: str) -> None:
    """Raise ValueError unless subject is a real mailto: or https: contact."""
    mail = re.fullmatch(r"mailto:([^@\s]+)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)", subject)
    site = re.fullmatch(r"https://([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)", subject)
    if not (mail or site):
        raise ValueError(
            "VAPID subject must be mailto:someone@your-domain or https://your-domain (no path)"
        )
    domain = (mail or site).group(2 if mail else 1).lower()
    placeholder = domain in _PLACEHOLDER_DOMAINS or domain.endswith(_PLACEHOLDER_SUFFIXES)
    placeholder |= any(domain.endswith("." + d) for d in _PLACEHOLDER_DOMAINS)
    if placeholder or (mail and mail.group(1).lower() in _PLACEHOLDER_MAILBOXES):
        raise ValueError(f"VAPID subject {subject!r} is a placeholder; use a real contact")


def _key_bytes(value: str | bytes, name: str) -> bytes:
    """Decode a subscription key exactly as pywebpush's WebPusher does."""
    data = value.encode() if isinstance(value, str) else value
    if not isinstance(data, bytes):
        raise ValueError(f"subscription key {name} must be a base64url string")
    return base64.urlsafe_b64decode(data + b"===="[: len(data) % 4])


def encrypt(payload: bytes, p256dh: str, auth: str) -> bytes:
    """Encrypt payload for a subscription (RFC 8291, aes128gcm), as pywebpush does.

    The same call WebPusher(...).encode(payload, "aes128gcm") makes, without its
    per-message copying: a new ephemeral P-256 key, a random salt, http_ece.
    """
    return http_ece.encrypt(
        payload,
        private_key=ec.generate_private_key(ec.SECP256R1()),
        dh=_key_bytes(p256dh, "p256dh"),
        auth_secret=_key_bytes(auth, "auth"),
        version="aes128gcm",
    )


def _ssl_context(cafile: str | None) -> ssl.SSLContext:
    """The certificate check requests made: REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE, else certifi."""
    return _ssl_context_for(cafile or DEFAULT_CA_BUNDLE_PATH)


@functools.lru_cache(maxsize=4)
def _ssl_context_for(bundle: str) -> ssl.SSLContext:
    if os.path.isdir(bundle):
        return ssl.create_default_context(capath=bundle)
    return ssl.create_default_context(cafile=bundle)


async def _reply_text(answer: aiohttp.ClientResponse) -> str:
    """The start of the answer's body as text (enough for a reason; the rest is not read)."""
    data = b""
    while len(data) < MAX_REPLY_BYTES:
        chunk = await answer.content.read(MAX_REPLY_BYTES - len(data))
        if not chunk:
            break
        data += chunk
    try:
        return data.decode(answer.charset or "utf-8", "replace")
    except LookupError:  # an unknown charset
        return data.decode("utf-8", "replace")


class _Request:
    """One encrypted, signed message ready to post."""

    __slots__ = ("endpoint", "body", "headers", "proxy", "now", "prepare_ms")

    def __init__(self, endpoint, body, headers, proxy, now, prepare_ms):
        self.endpoint, self.body, self.headers = endpoint, body, headers
        self.proxy, self.now, self.prepare_ms = proxy, now, prepare_ms


class _Batch:
    """One call's results, filled in on the loop thread."""

    __slots__ = ("results", "left", "done")

    def __init__(self, size: int) -> None:
        self.results: list[Any] = [None] * size
        self.left = 1  # the caller's seal: released once every request has been handed over
        self.done = threading.Event()

    def release(self) -> None:
        self.left -= 1
        if not self.left:
            self.done.set()


class _Gate:
    """A FIFO limit on concurrent holders, O(1) per use (3.11's Semaphore scans its waiters)."""

    __slots__ = ("free", "waiters")

    def __init__(self, size: int) -> None:
        self.free = size
        self.waiters: collections.deque[asyncio.Future] = collections.deque()

    async def __aenter__(self) -> None:
        if self.free and not self.waiters:
            self.free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter  # release() hands its slot straight to us
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._release()

    def _release(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1


class _Runtime:
    """A Sender's private event-loop thread, its aiohttp session, and the send queue.

    Requests wait in one FIFO queue; at most in_flight worker tasks take them in turn
    and post them (so in_flight bounds the requests in flight, and order is kept).
    It holds no reference to its Sender, so that a Sender dropped without close() is
    still shut down cleanly (by its weakref.finalize, also at interpreter exit).
    """

    def __init__(
        self, in_flight: int, per_origin: int, timeout: float, ssl_context: ssl.SSLContext
    ) -> None:
        self.in_flight = in_flight
        self.per_origin = per_origin  # set (< in_flight): connections per push service
        self.timeout = timeout
        self._ssl = ssl_context
        self._calls = 0  # send/send_many calls using this runtime; close() waits for them
        self._idle = threading.Condition()
        self._queue: collections.deque[tuple[_Batch, int, _Request]] = collections.deque()
        self._workers: set[asyncio.Task] = set()  # strong references while they run
        self._working = 0  # workers still taking requests (the set also holds finishing ones)
        self._origin_gates: dict[str, _Gate] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="push-sender", daemon=True)
        self.thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._open(), self.loop).result()
        except BaseException:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()
            raise

    def _run(self) -> None:
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    async def _open(self) -> None:
        # limit == in_flight: a worker never waits for a connection (the timeout is all HTTP).
        connector = aiohttp.TCPConnector(
            limit=self.in_flight, limit_per_host=self.per_origin, ssl=self._ssl
        )
        self.http = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            cookie_jar=aiohttp.DummyCookieJar(),  # push services set none; skip the bookkeeping
        )

    # -- used from the callers' threads ------------------------------------------------

    def enter(self) -> None:
        with self._idle:
            self._calls += 1

    def leave(self) -> None:
        with self._idle:
            self._calls -= 1
            if not self._calls:
                self._idle.notify_all()

    def hand_over(self, batch: _Batch, items: list[tuple[int, _Request]]) -> None:
        """Queue requests for sending (they start at once if a worker is free)."""
        self.loop.call_soon_threadsafe(self._feed, batch, items)

    def seal(self, batch: _Batch) -> None:
        """Say that every request of batch was handed over (batch.done follows the last)."""
        self.loop.call_soon_threadsafe(batch.release)

    def close(self) -> None:
        """Wait for calls in progress, close the session and its connections, stop the thread."""
        if threading.get_ident() == self.thread.ident:  # dropped on its own loop thread
            self.loop.create_task(self._shutdown()).add_done_callback(lambda _: self.loop.stop())
            return
        with self._idle:
            self._idle.wait_for(lambda: not self._calls)
        if not self.thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()

    # -- on the loop thread ------------------------------------------------------------------

    async def _shutdown(self) -> None:
        if self._workers:
            await asyncio.wait(list(self._workers))
        await self.http.close()
        await self.loop.shutdown_default_executor()  # the resolver's threads, if DNS was used

    def _feed(self, batch: _Batch, items: list[tuple[int, _Request]]) -> None:
        batch.left += len(items)
        self._queue.extend((batch, index, request) for index, request in items)
        for _ in range(min(self.in_flight - self._working, len(self._queue))):
            self._working += 1
            worker = self.loop.create_task(self._work())
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)

    async def _work(self) -> None:
        try:
            await self._take_turns()
        finally:
            self._working -= 1

    async def _take_turns(self) -> None:
        queue = self._queue
        while queue:
            batch, index, request = queue.popleft()
            try:
                if self.per_origin:
                    origin = _origin(request.endpoint)
                    gate = self._origin_gates.get(origin)
                    if gate is None:
                        gate = self._origin_gates[origin] = _Gate(self.per_origin)
                    async with gate:
                        batch.results[index] = await self._post(request)
                else:
                    batch.results[index] = await self._post(request)
            except BaseException as exc:  # raised to the caller, in input order
                batch.results[index] = exc
                if not isinstance(exc, Exception):
                    raise
            finally:
                batch.release()

    async def _post(self, request: _Request) -> Outcome:
        """POST one message; the timeout covers only this request's HTTP exchange."""
        started = time.perf_counter()
        try:
            async with self.http.post(
                request.endpoint,
                data=request.body,
                headers=request.headers,
                proxy=request.proxy,
                allow_redirects=False,  # a push service never redirects; do not follow
            ) as answer:
                text = await _reply_text(answer)
                outcome = classify(answer.status, answer.headers, body=text, now=request.now)
        except TimeoutError:  # also aiohttp's connect and read timeouts
            outcome = classify(None, error="timeout")
        except aiohttp.ClientConnectionError as exc:
            outcome = classify(None, error=f"connection error: {str(exc)[:200]}")
        except aiohttp.ClientError as exc:
            outcome = Outcome("failed", None, None, f"request error: {str(exc)[:200]}")
        except _UNSENDABLE as exc:
            outcome = Outcome("failed", None, None, f"cannot send: {str(exc)[:200]}")
        outcome.elapsed_ms = request.prepare_ms + (time.perf_counter() - started) * 1000
        return outcome


def _check_job(payload: object, ttl: object, urgency: object) -> None:
    """Raise ValueError for a caller's mistake (not the push service's answer)."""
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
        raise ValueError("ttl must be a whole number of seconds >= 0")
    if not isinstance(payload, bytes) or not payload:
        raise ValueError("payload must be non-empty bytes: every push shows a notification")
    if urgency not in URGENCIES:
        raise ValueError(f"urgency must be one of {URGENCIES}")


class Sender:
    """Send encrypted, VAPID-signed pushes; the HTTP runs on one private asyncio thread.

    Thread-safe: send() and send_many() may be called from any threads at once. The
    calling thread encrypts (the ECDH step releases the GIL, so it overlaps with the
    loop thread's HTTP work); the loop thread (aiohttp, one pooled session) posts with at
    most max_workers requests in flight and at most pool_size connections per push
    service. The thread starts on first use and stops in close().
    """

    def __init__(
        self,
        vapid_private_pem: str,
        subject: str,
        timeout: float = 10.0,
        pool_size: int = 32,
        max_workers: int = 16,
    ) -> None:
        check_subject(subject)
        if max_workers < 1 or pool_size < 1:
            raise ValueError("max_workers and pool_size must be at least 1")
        self.subject = subject
        self.timeout = timeout
        self.pool_size = pool_size
        self.max_workers = max_workers  # requests in flight at once (the name predates asyncio)
        key = _load_private_key(vapid_private_pem)
        self.public_key = _public_key_text(key)
        self._vapid = Vapid(key)
        # Read proxy and CA settings as requests did (trust_env off: once, not per request).
        self._cafile = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self._proxies: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self._vapid_cache: dict[str, tuple[dict[str, str], int]] = {}
        self.signings = 0
        self._runtime: _Runtime | None = None
        self._finalizer: weakref.finalize | None = None

    def vapid_headers(self, endpoint: str, now: float | None = None) -> dict[str, str]:
        """Return the Authorization header for endpoint's origin, signing when stale."""
        return self._vapid_headers(_origin(endpoint), now)

    def _vapid_headers(self, origin: str, now: float | None) -> dict[str, str]:
        now = time.time() if now is None else now
        with self._lock:
            cached = self._vapid_cache.get(origin)
            if cached and now < cached[1] - JWT_RENEW_BEFORE:
                return cached[0]
            # A fresh claims dict per origin: pywebpush-style reuse sends a stale aud.
            exp = int(now) + JWT_LIFETIME
            headers = self._vapid.sign({"sub": self.subject, "aud": origin, "exp": exp})
            self._vapid_cache[origin] = (headers, exp)
            self.signings += 1
            return headers

    def _proxy_for(self, origin: str) -> str | None:
        try:
            return self._proxies[origin]
        except KeyError:
            proxy = self._proxies[origin] = select_proxy(origin, get_environ_proxies(origin))
            return proxy

    def _prepare(self, subscription, payload, ttl, urgency, topic, now) -> "_Request | Outcome":
        """Encrypt and sign one message; a subscription that cannot be sent to is an Outcome."""
        started = time.perf_counter()
        endpoint = subscription["endpoint"]
        try:
            body = encrypt(payload, subscription["p256dh"], subscription["auth"])
            origin = _origin(endpoint)
            headers = {
                **self._vapid_headers(origin, now),
                "TTL": str(ttl),
                "Urgency": urgency,
                "Content-Encoding": "aes128gcm",
                "Content-Type": "application/octet-stream",
            }
            if topic:
                headers["Topic"] = topic_header(topic)
            proxy = self._proxy_for(origin)
        except _UNSENDABLE as exc:
            outcome = Outcome("failed", None, None, f"cannot send: {str(exc)[:200]}")
            outcome.elapsed_ms = (time.perf_counter() - started) * 1000
            return outcome
        prepare_ms = (time.perf_counter() - started) * 1000
        return _Request(endpoint, body, headers, proxy, now, prepare_ms)

    def _enter(self) -> _Runtime:
        """The running runtime (started on first use), counted as in use until _leave."""
        with self._lock:
            runtime = self._runtime
            if runtime is None:
                runtime = _Runtime(
                    self.max_workers,
                    self.pool_size if self.pool_size < self.max_workers else 0,
                    self.timeout,
                    _ssl_context(self._cafile),
                )
                self._runtime = runtime
                self._finalizer = weakref.finalize(self, runtime.close)
            runtime.enter()
        if threading.get_ident() == runtime.thread.ident:
            runtime.leave()
            raise RuntimeError("Sender methods block: do not call them on its own loop thread")
        return runtime

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
        _check_job(payload, ttl, urgency)
        [(_, outcome)] = self._send_all([(None, subscription, payload, ttl, urgency, topic)], now)
        return outcome

    def send_many(self, jobs: list[tuple]) -> list[tuple[Any, Outcome]]:
        """Send (key, subscription, payload, ttl, urgency, topic) jobs concurrently.

        Returns (key, Outcome) in input order. A caller's mistake (bad ttl, urgency or
        payload) raises ValueError before anything is sent.
        """
        if not jobs:
            return []
        for _, _, payload, ttl, urgency, _ in jobs:
            _check_job(payload, ttl, urgency)
        return self._send_all(jobs, None)

    def _send_all(self, jobs: list[tuple], now: float | None) -> list[tuple[Any, Outcome]]:
        """Encrypt here, post on the loop thread: chunks go over while the rest is encrypted."""
        batch = _Batch(len(jobs))
        runtime = None
        try:
            chunk: list[tuple[int, _Request]] = []
            for index, (_, sub, payload, ttl, urgency, topic) in enumerate(jobs):
                request = self._prepare(sub, payload, ttl, urgency, topic, now)
                if isinstance(request, Outcome):
                    batch.results[index] = request
                    continue
                chunk.append((index, request))
                if len(chunk) >= _HAND_OVER:
                    runtime = runtime or self._enter()
                    runtime.hand_over(batch, chunk)
                    chunk = []
            if chunk:
                runtime = runtime or self._enter()
                runtime.hand_over(batch, chunk)
        finally:
            if runtime is not None:
                runtime.seal(batch)
                batch.done.wait()
                runtime.leave()
        for result in batch.results:
            if isinstance(result, BaseException):
                raise result
        return [(job[0], outcome) for job, outcome in zip(jobs, batch.results, strict=True)]

    def close(self) -> None:
        """Wait for sends in progress, close pooled connections and stop the loop thread.

        Idempotent; a Sender used again after close() starts a new thread.
        """
        with self._lock:
            finalizer, self._finalizer, self._runtime = self._finalizer, None, None
        if finalizer is not None:
            finalizer()  # runtime.close(), once

    def __enter__(self) -> "Sender":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
