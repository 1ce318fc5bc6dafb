"""Web Push with VAPID: keys, subscription checks, payloads, and one sender that
turns every push-service answer into an Outcome."""

import base64
import hashlib
import ipaddress
import json
import os
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from http_ece import ECEException
from py_vapid import Vapid, VapidException
from pywebpush import WebPusher, WebPushException
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies

URGENCIES = ("very-low", "low", "normal", "high")
MAX_ENDPOINT_LENGTH = 2048
MAX_PAYLOAD_BYTES = 3000  # the encrypted record must stay under 4096 bytes
JWT_LIFETIME = 12 * 3600
JWT_RENEW_BEFORE = 3600
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


class Sender:
    """Send encrypted, VAPID-signed pushes over one pooled HTTP session."""

    def __init__(
        self,
        vapid_private_pem: str,
        subject: str,
        timeout: float = 10.0,
        pool_size: int = 32,
        max_workers: int = 16,
    ) -> None:
        check_subject(subject)
        self.subject = subject
        self.timeout = timeout
        self.max_workers = max_workers
        key = _load_private_key(vapid_private_pem)
        self.public_key = _public_key_text(key)
        self._vapid = Vapid(key)
        self._session = requests.Session()
        # Read proxy and CA settings once: with trust_env on, requests rescans the
        # environment on every request (~160 µs each, measured).
        self._session.trust_env = False
        self._session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        self._proxies: dict[str, dict[str, str]] = {}
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._lock = threading.Lock()
        self._vapid_cache: dict[str, tuple[dict[str, str], int]] = {}
        self.signings = 0
        self._executor: ThreadPoolExecutor | None = None

    def vapid_headers(self, endpoint: str, now: float | None = None) -> dict[str, str]:
        """Return the Authorization header for endpoint's origin, signing when stale."""
        now = time.time() if now is None else now
        origin = _origin(endpoint)
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
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
            raise ValueError("ttl must be a whole number of seconds >= 0")
        if not isinstance(payload, bytes) or not payload:
            raise ValueError("payload must be non-empty bytes: every push shows a notification")
        if urgency not in URGENCIES:
            raise ValueError(f"urgency must be one of {URGENCIES}")
        started = time.perf_counter()
        outcome = self._attempt(subscription, payload, ttl, urgency, topic, now)
        outcome.elapsed_ms = (time.perf_counter() - started) * 1000
        return outcome

    def _proxies_for(self, endpoint: str) -> dict[str, str]:
        origin = _origin(endpoint)
        proxies = self._proxies.get(origin)
        if proxies is None:
            proxies = self._proxies[origin] = get_environ_proxies(origin)
        return proxies

    def _attempt(self, subscription, payload, ttl, urgency, topic, now) -> Outcome:
        endpoint = subscription["endpoint"]
        try:
            keys = {"p256dh": subscription["p256dh"], "auth": subscription["auth"]}
            body = WebPusher({"endpoint": endpoint, "keys": keys}).encode(payload, "aes128gcm")
            headers = {
                **self.vapid_headers(endpoint, now),
                "TTL": str(ttl),
                "Urgency": urgency,
                "Content-Encoding": "aes128gcm",
                "Content-Type": "application/octet-stream",
            }
            if topic:
                headers["Topic"] = topic_header(topic)
            response = self._session.post(
                endpoint,
                data=body["body"],
                headers=headers,
                timeout=self.timeout,
                proxies=self._proxies_for(endpoint),
                allow_redirects=False,  # a push service never redirects; do not follow
            )
        except requests.Timeout:
            return classify(None, error="timeout")
        except requests.ConnectionError as exc:
            return classify(None, error=f"connection error: {str(exc)[:200]}")
        except requests.RequestException as exc:
            return Outcome("failed", None, None, f"request error: {str(exc)[:200]}")
        except _UNSENDABLE as exc:
            return Outcome("failed", None, None, f"cannot send: {str(exc)[:200]}")
        return classify(response.status_code, response.headers, body=response.text, now=now)

    def send_many(self, jobs: list[tuple]) -> list[tuple[Any, Outcome]]:
        """Send (key, subscription, payload, ttl, urgency, topic) jobs in parallel."""
        if not jobs:
            return []
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.max_workers, "push-send")
        futures = [
            (key, self._executor.submit(self.send, sub, payload, ttl, urgency, topic))
            for key, sub, payload, ttl, urgency, topic in jobs
        ]
        return [(key, future.result()) for key, future in futures]

    def close(self) -> None:
        """Stop the worker threads and close pooled connections."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._session.close()

    def __enter__(self) -> "Sender":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
