"""Web Push with VAPID, all but the HTTP (that is sender.py): keys, subscription checks,
payloads, and the Outcome every push-service answer becomes."""

import base64
import hashlib
import ipaddress
import json
import re
import socket
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from companion.contract import parse
from companion.errors import N_, Invalid
from companion.reminders import words

MAX_ENDPOINT_LENGTH = 2048
URGENCIES = ("very-low", "low", "normal", "high")
MAX_PAYLOAD_BYTES = 3000  # the encrypted record must stay under 4096 bytes
DISCREET_TITLE = "Companion"  # the app's name, in every language
DISCREET_BODY = "New aftercare reminder"  # in English; words.discreet_body(language) otherwise

_B64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")
_PRIVATE_SUFFIXES = (".localhost", ".local", ".internal")
_PLACEHOLDER_DOMAINS = ("example.com", "example.org", "example.net", "localhost")
_PLACEHOLDER_SUFFIXES = (".example", ".invalid", ".localhost")
_PLACEHOLDER_MAILBOXES = {"you", "your", "yourname", "your-name", "your-email", "your.email"}


def b64url(data: bytes) -> str:
    """Encode data as unpadded base64url, as browsers and VAPID write keys."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_key_text(key: ec.EllipticCurvePrivateKey) -> str:
    """Return the application server key (base64url point) of a private key."""
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(point)


def load_private_key(pem: str) -> ec.EllipticCurvePrivateKey:
    """Load a VAPID private key PEM; raise ValueError unless it is P-256."""
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
    return pem.decode("ascii"), public_key_text(key)


def public_key_from_private(pem: str) -> str:
    """Return the application server key (base64url point) for a private key PEM."""
    return public_key_text(load_private_key(pem))


def _b64url_decode(text: str) -> bytes | None:
    """Decode base64url with or without padding; None when it is not base64url."""
    if not _B64URL.fullmatch(text):
        return None
    text = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:  # binascii.Error, e.g. a length of 4n+1
        return None


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
    return not _is_public(address)


_RELAY_ANYCAST = ipaddress.ip_network("192.88.99.0/24")  # 6to4 relays (RFC 7526: deprecated)


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    six_to_four = isinstance(address, ipaddress.IPv6Address) and address.sixtofour
    if six_to_four and not _is_public(six_to_four):  # 6to4 carries an IPv4 address: judge it
        return False
    if isinstance(address, ipaddress.IPv4Address) and address in _RELAY_ANYCAST:
        return False
    return address.is_global and not (address.is_multicast or address.is_reserved)


def is_public_address(text: str) -> bool:
    """Whether an IP address (as a resolver returns it) is a public unicast address."""
    try:
        return _is_public(ipaddress.ip_address(text.split("%", 1)[0]))
    except ValueError:
        return False


def is_private_endpoint(endpoint: str) -> bool:
    """Whether an endpoint's host, as written, is local or non-public (no DNS)."""
    return _is_private_host(urlsplit(endpoint).hostname or "")


def _check_endpoint(endpoint: object, allow_private: bool) -> str | None:
    """Return why endpoint is unacceptable (a sentence naming it), or None."""
    if not isinstance(endpoint, str) or not endpoint:
        return N_("endpoint must be a URL string")
    if len(endpoint) > MAX_ENDPOINT_LENGTH:
        return N_("endpoint must be at most %(n)s characters", n=MAX_ENDPOINT_LENGTH)
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in endpoint) or not endpoint.isascii():
        return N_("endpoint must not contain spaces, control or non-ASCII characters")
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return N_("endpoint is not a valid URL")
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        return N_("endpoint must be an https URL")
    if not parts.hostname:
        return N_("endpoint must have a host")
    if "@" in parts.netloc:
        return N_("endpoint must not contain credentials")
    if not allow_private and _is_private_host(parts.hostname):
        return N_("endpoint must be a public push service, not a local or private address")
    return None


def validate_subscription(
    data: object, allow_private: bool
) -> tuple[dict[str, str] | None, dict[str, str]]:
    """Check a PushSubscription.toJSON() with PushSubscriptionInput; return (subscription, errors)."""
    # Imported here: reminders.models imports this module (the endpoint check), a real cycle.
    from companion.reminders.models import PushSubscriptionInput

    if not isinstance(data, dict):
        return None, {"subscription": N_("must be a JSON object")}
    try:
        values = parse(PushSubscriptionInput, data, context={"allow_private": allow_private})
    except Invalid as error:
        return None, error.fields
    return {"endpoint": values["endpoint"], **values["keys"]}, {}


def _encode(message: dict) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def build_payload(
    title: str,
    body: str,
    url: str,
    tag: str,
    notification_id: int,
    discreet: bool = False,
    language: str | None = None,
) -> bytes:
    """Encode a notification for the service worker, trimming the body to fit.

    A discreet one says only "New aftercare reminder", in the client's language.
    """
    if discreet:
        title, body = DISCREET_TITLE, words.discreet_body(language)
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


def origin(endpoint: str) -> str:
    """Return the push service an endpoint belongs to (scheme://host[:port])."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}".lower()


def topic_header(topic: str) -> str:
    """Return topic if it is a valid Topic header, else a stable 32-char digest of it."""
    if _TOPIC.fullmatch(topic):
        return topic
    return b64url(hashlib.sha256(topic.encode()).digest())[:32]


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
