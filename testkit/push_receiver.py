"""A real local Web Push service for tests and benchmarks.

It checks VAPID the way push services do, decrypts each message with the fake
browser's keys, records it, and answers as scripted:

    with PushReceiver(application_server_key=sender.public_key) as receiver:
        browser = receiver.new_subscription("ana")
        sender.send(browser.info, payload, ttl=3600)
        assert receiver.messages_for(browser)[0].payload["title"] == "..."
"""

import argparse
import base64
import binascii
import contextlib
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

MAX_JWT_LIFETIME = 24 * 3600
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_PATH = re.compile(r"/push/([A-Za-z0-9_-]+)")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Reply:
    """One scripted answer: a status, an optional Retry-After and body."""

    status: int
    retry_after: str | int | None = None
    body: str = ""


@dataclass
class Behaviour:
    """How the receiver answers: for one subscription, or for all of them."""

    delay_ms: float | None = None
    script: deque = field(default_factory=deque)
    status: Reply | None = None
    hang_seconds: float | None = None


@dataclass
class Received:
    """One message the receiver accepted and decrypted."""

    subscription_id: str
    payload: dict | None
    raw: bytes
    ttl: int
    urgency: str | None
    topic: str | None
    received_at: float
    claims: dict


@dataclass
class Rejected:
    """One request the receiver refused before delivery."""

    subscription_id: str | None
    status: int
    reason: str


class FakeBrowserSubscription:
    """The keys and endpoint a browser's pushManager.subscribe() would make.

    With a seed the keys are derived from (seed, id), so another process that
    knows the seed (ReceiverProcess) can decrypt without being told the keys.
    """

    def __init__(
        self,
        subscription_id: str,
        endpoint: str,
        application_server_key: str | None = None,
        seed: str | None = None,
    ):
        self.id = subscription_id
        self.endpoint = endpoint
        self.application_server_key = application_server_key
        if seed is None:
            self.private_key = ec.generate_private_key(ec.SECP256R1())
            self.auth_secret = os.urandom(16)
        else:
            digest = hashlib.sha256(f"{seed}/{subscription_id}".encode()).digest()
            self.private_key = ec.derive_private_key(
                int.from_bytes(digest, "big") % (_P256_ORDER - 1) + 1, ec.SECP256R1()
            )
            auth_digest = hashlib.sha256(f"{seed}/{subscription_id}/auth".encode()).digest()
            self.auth_secret = auth_digest[:16]
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.p256dh = _b64url(point)
        self.auth = _b64url(self.auth_secret)

    def to_json(self) -> dict:
        """Return what PushSubscription.toJSON() gives in the page."""
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": self.p256dh, "auth": self.auth},
        }

    @property
    def info(self) -> dict[str, str]:
        """Return the stored form the Sender takes."""
        return {"endpoint": self.endpoint, "p256dh": self.p256dh, "auth": self.auth}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so pooled senders reuse connections
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.server.receiver._count_connection()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        reply = self.server.receiver._handle(self.path, self.headers, body)
        payload = reply.body.encode()
        try:
            self.send_response(reply.status)
            if reply.retry_after is not None:
                self.send_header("Retry-After", str(reply.retry_after))
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the sender gave up waiting (hang)

    def do_GET(self) -> None:
        receiver = self.server.receiver
        if self.path == "/_stats":
            payload = json.dumps(receiver.stats()).encode()
        elif self.path.startswith("/_messages"):
            since = int(self.path.partition("since=")[2] or 0)
            payload = json.dumps(receiver.listing(since)).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: thousands of requests in benchmarks


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request, client_address) -> None:
        pass  # a client closing mid-request is normal here


class PushReceiver:
    """A push service on 127.0.0.1 that verifies, decrypts and records messages."""

    def __init__(
        self,
        application_server_key: str | None = None,
        delay_ms: float = 0,
        decrypt: bool = True,
        seed: str | None = None,
        port: int = 0,
        jitter_ms: tuple[float, float] | None = None,
    ) -> None:
        self.application_server_key = application_server_key
        self.jitter_ms = jitter_ms  # (low, high): each answer waits a random time between
        self.decrypt = decrypt  # False: skip decryption, to benchmark the sender alone
        self.seed = seed  # set: any /push/<id> is a subscription derived from (seed, id)
        self._port = port
        self.received: list[Received] = []
        self.rejected: list[Rejected] = []
        self.connections = 0
        self.requests = 0
        self._subscriptions: dict[str, FakeBrowserSubscription] = {}
        self._behaviours: dict[str | None, Behaviour] = {None: Behaviour(delay_ms=delay_ms)}
        self._verified: dict[str, tuple[dict, str]] = {}  # token -> (claims, key)
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------

    def start(self) -> "PushReceiver":
        """Listen on an ephemeral port in a background thread."""
        self._server = _Server(("127.0.0.1", self._port), _Handler)
        self._server.receiver = self
        self._port = self._server.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening; later sends to this receiver get connection refused."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = None

    def __enter__(self) -> "PushReceiver":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The listening port; kept after stop() so refused-connection tests can use it."""
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- subscriptions and behaviour ---------------------------------------

    def new_subscription(
        self, name: str | None = None, application_server_key: str | None = None
    ) -> FakeBrowserSubscription:
        """Make a browser-like subscription whose endpoint is on this receiver."""
        subscription_id = name or _b64url(os.urandom(12))
        if not _PATH.fullmatch(f"/push/{subscription_id}"):
            raise ValueError("subscription name must use letters, digits, - and _")
        sub = FakeBrowserSubscription(
            subscription_id,
            f"{self.base_url}/push/{subscription_id}",
            application_server_key or self.application_server_key,
            self.seed,
        )
        with self._changed:
            self._subscriptions[subscription_id] = sub
        return sub

    def stats(self) -> dict[str, int]:
        """Return the counters, as GET /_stats also does."""
        with self._changed:
            return {
                "received": len(self.received),
                "rejected": len(self.rejected),
                "connections": self.connections,
                "requests": self.requests,
            }

    def listing(self, since: int = 0) -> list[list]:
        """[subscription id, payload id, payload tag, arrival time] of each message from the
        since-th on, as GET /_messages?since=k also does (for receivers in another process)."""
        with self._changed:
            got = self.received[since:]
        return [
            [
                m.subscription_id,
                (m.payload or {}).get("id"),
                (m.payload or {}).get("tag"),
                m.received_at,
            ]
            for m in got
        ]

    def _behaviour(self, sub) -> Behaviour:
        key = sub.id if isinstance(sub, FakeBrowserSubscription) else sub
        with self._changed:
            return self._behaviours.setdefault(key, Behaviour())

    def script(self, sub, replies: list[int | Reply]) -> None:
        """Answer the next requests (for sub, or all when None) with these statuses."""
        queue = self._behaviour(sub).script
        with self._changed:
            queue.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    def respond_status(self, sub, status: int, body: str = "", retry_after=None) -> None:
        """Answer every request (for sub, or all when None) with status from now on."""
        self._behaviour(sub).status = Reply(status, retry_after, body)

    def hang(self, sub, seconds: float) -> None:
        """Wait this long before answering (for sub, or all when None).

        The message is still recorded after the wait, as a push service that
        accepted it late would deliver it: the sender sees a timeout, retries, and
        the device gets it twice (at-least-once; the tag dedupes).
        """
        self._behaviour(sub).hang_seconds = seconds

    def set_delay(self, sub, delay_ms: float) -> None:
        """Sleep this long before every answer (for sub, or all when None)."""
        self._behaviour(sub).delay_ms = delay_ms

    def reset(self, sub=None) -> None:
        """Forget scripted answers, statuses, hangs and delays (for sub, or all when None)."""
        key = sub.id if isinstance(sub, FakeBrowserSubscription) else sub
        with self._changed:
            self._behaviours[key] = Behaviour(delay_ms=0 if key is None else None)

    # -- what arrived ------------------------------------------------------

    def messages_for(self, sub) -> list[Received]:
        key = sub.id if isinstance(sub, FakeBrowserSubscription) else sub
        with self._changed:
            return [r for r in self.received if r.subscription_id == key]

    def count_for(self, sub) -> int:
        return len(self.messages_for(sub))

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until at least count messages were received; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.received) >= count, timeout)

    # -- the push service ----------------------------------------------------

    def _count_connection(self) -> None:
        with self._changed:
            self.connections += 1

    def _reject(self, subscription_id, status: int, reason: str) -> Reply:
        with self._changed:
            self.rejected.append(Rejected(subscription_id, status, reason))
        return Reply(status, body=reason)

    def _handle(self, path: str, headers, body: bytes) -> Reply:
        with self._changed:
            self.requests += 1
        match = _PATH.fullmatch(path)
        sub = self._subscriptions.get(match.group(1)) if match else None
        if sub is None and match and self.seed is not None:
            sub = self.new_subscription(match.group(1))
        if sub is None:
            return self._reject(None, 404, "no such subscription")
        now = time.time()
        claims, problem = self._verify_vapid(headers.get("Authorization", ""), sub, now)
        if problem:
            return self._reject(sub.id, *problem)
        ttl = headers.get("TTL", "")
        if not ttl.isdigit():
            return self._reject(sub.id, 400, "TTL header missing or not a whole number")
        if headers.get("Content-Encoding", "").lower() != "aes128gcm":
            return self._reject(sub.id, 415, "Content-Encoding must be aes128gcm")
        raw, payload = body, None
        if self.decrypt:
            try:
                raw = http_ece.decrypt(
                    body,
                    private_key=sub.private_key,
                    auth_secret=sub.auth_secret,
                    version="aes128gcm",
                )
            except Exception as exc:  # any failure to decrypt is the sender's fault
                return self._reject(sub.id, 400, f"cannot decrypt: {exc!r}")
            with contextlib.suppress(ValueError):
                payload = json.loads(raw)
        reply = self._next_reply(sub)
        if 200 <= reply.status < 300:
            record = Received(
                sub.id,
                payload,
                raw,
                int(ttl),
                headers.get("Urgency"),
                headers.get("Topic"),
                now,
                claims,
            )
            with self._changed:
                self.received.append(record)
                self._changed.notify_all()
        return reply

    def _next_reply(self, sub: FakeBrowserSubscription) -> Reply:
        """Pick the answer and wait as configured; the subscription's rules win."""
        with self._changed:
            own, common = self._behaviours.get(sub.id, Behaviour()), self._behaviours[None]
            if own.script:
                reply = own.script.popleft()
            elif common.script:
                reply = common.script.popleft()
            else:
                reply = own.status or common.status or Reply(201)
            delay_ms = own.delay_ms if own.delay_ms is not None else common.delay_ms
            hang = own.hang_seconds if own.hang_seconds is not None else common.hang_seconds
        if hang:
            self._stopping.wait(hang)
        elif delay_ms:
            time.sleep(delay_ms / 1000)
        if self.jitter_ms and not hang:
            time.sleep(random.uniform(*self.jitter_ms) / 1000)
        return reply

    def _verify_vapid(self, authorization: str, sub, now: float):
        """Return (claims, None) or (None, (status, reason)) as a push service would."""
        scheme, _, params = authorization.partition(" ")
        if scheme.lower() != "vapid":
            return None, (401, "Authorization must use the vapid scheme")
        parts = dict(p.strip().partition("=")[::2] for p in params.split(","))
        token, key = parts.get("t", ""), parts.get("k", "")
        if not token or not key:
            return None, (401, "vapid Authorization needs t= and k=")
        cached = self._verified.get(token)
        if cached and cached[1] == key:
            claims = cached[0]
        else:
            try:
                claims = self._check_signature(token, key)
            except (InvalidSignature, ValueError, TypeError, AttributeError, binascii.Error):
                return None, (401, "BadJwtToken: signature or token format invalid")
            self._verified[token] = (claims, key)
        expected_key = sub.application_server_key
        if expected_key and key.rstrip("=") != expected_key.rstrip("="):
            return None, (403, "k does not match the subscription's application server key")
        origin = sub.endpoint[: sub.endpoint.index("/", len("http://"))]
        if claims.get("aud") != origin:
            return None, (401, f"BadJwtToken: aud {claims.get('aud')!r} is not {origin!r}")
        exp = claims.get("exp")
        if not isinstance(exp, int) or not now < exp <= now + MAX_JWT_LIFETIME:
            return None, (401, "BadJwtToken: exp missing, past, or more than 24 h ahead")
        sub_claim = claims.get("sub")
        if not isinstance(sub_claim, str) or not sub_claim.startswith(("mailto:", "https:")):
            return None, (401, "BadJwtToken: sub must be mailto: or https:")
        return claims, None

    @staticmethod
    def _check_signature(token: str, key: str) -> dict:
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(_b64url_decode(header_b64))
        if header.get("alg") != "ES256":
            raise ValueError("alg must be ES256")
        signature = _b64url_decode(signature_b64)
        if len(signature) != 64:
            raise ValueError("ES256 signature must be 64 bytes")
        public_key = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), _b64url_decode(key)
        )
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        public_key.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
        claims = json.loads(_b64url_decode(claims_b64))
        if not isinstance(claims, dict):
            raise ValueError("claims must be a JSON object")
        return claims


class ReceiverProcess:
    """A PushReceiver in its own process, so benchmarks do not share one GIL with it.

    Subscriptions are derived from the seed on both sides; read counts with stats().

        with ReceiverProcess(application_server_key=key) as receiver:
            sender.send(receiver.new_subscription("a1").info, payload, ttl=60)
            assert receiver.stats()["received"] == 1
    """

    def __init__(
        self,
        application_server_key: str | None = None,
        delay_ms: float = 0,
        decrypt: bool = True,
        seed: str = "bench",
        jitter_ms: tuple[float, float] | None = None,
    ) -> None:
        self.application_server_key = application_server_key
        self.seed = seed
        self._args = [f"--seed={seed}", f"--delay-ms={delay_ms}"]
        if jitter_ms:
            self._args.append(f"--jitter-ms={jitter_ms[0]},{jitter_ms[1]}")
        if application_server_key:
            self._args.append(f"--application-server-key={application_server_key}")
        if not decrypt:
            self._args.append("--no-decrypt")
        self._process: subprocess.Popen | None = None
        self.base_url = ""

    def command(self) -> list[str]:
        """How to run the receiver: this module; a subclass elsewhere names its own command."""
        return [sys.executable, "-m", "testkit.push_receiver", *self._args]

    def start(self):
        self._process = subprocess.Popen(
            self.command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.base_url = self._process.stdout.readline().strip()
        if not self.base_url.startswith("http://"):
            self.stop()
            raise RuntimeError("push receiver process did not start")
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.stdin.close()  # the child exits when its stdin closes
        self._process.wait(timeout=10)
        self._process.stdout.close()
        self._process = None

    def __enter__(self) -> "ReceiverProcess":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def new_subscription(self, name: str) -> FakeBrowserSubscription:
        """Return the subscription the child derives for name."""
        return FakeBrowserSubscription(
            name, f"{self.base_url}/push/{name}", self.application_server_key, self.seed
        )

    def stats(self) -> dict[str, int]:
        """Return the child's counters (received, rejected, connections, requests)."""
        with urllib.request.urlopen(f"{self.base_url}/_stats", timeout=10) as answer:
            return json.loads(answer.read())

    def messages(self, since: int = 0) -> list[tuple[str, int | None, str | None, float]]:
        """(subscription id, payload id, tag, arrival time) of each message from the since-th."""
        with urllib.request.urlopen(f"{self.base_url}/_messages?since={since}", timeout=60) as r:
            return [tuple(m) for m in json.loads(r.read())]

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None


def main(argv: list[str] | None = None) -> None:
    """Run a receiver until stdin closes; print its base URL first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", default="bench")
    parser.add_argument("--application-server-key")
    parser.add_argument("--delay-ms", type=float, default=0)
    parser.add_argument("--jitter-ms", help="LOW,HIGH: each answer also waits a random time")
    parser.add_argument("--no-decrypt", action="store_true")
    args = parser.parse_args(argv)
    receiver = PushReceiver(
        args.application_server_key,
        args.delay_ms,
        decrypt=not args.no_decrypt,
        seed=args.seed,
        port=args.port,
        jitter_ms=tuple(float(x) for x in args.jitter_ms.split(",")) if args.jitter_ms else None,
    )
    with receiver:
        print(receiver.base_url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
