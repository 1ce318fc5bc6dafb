"""The event-loop thread that posts: pywebpush's WebPusher.send_async over one shared
aiohttp session, an asyncio.Semaphore on requests in flight, every answer an Outcome."""

import asyncio
import concurrent.futures
import socket
import threading
import time
from typing import Any, NamedTuple
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
import http_ece
from aiohttp.resolver import ThreadedResolver
from cryptography.hazmat.primitives.asymmetric import ec
from http_ece import ECEException
from py_vapid import VapidException
from pywebpush import WebPusher, WebPushException

from companion.reminders.push import Outcome, classify, is_public_address, origin

# A corrupt stored subscription or a refused claim: retrying cannot help.
UNSENDABLE = (WebPushException, VapidException, ECEException, ValueError, TypeError, KeyError)
# A dead address should cost seconds, not the whole request timeout (10 s by default).
MAX_CONNECT_SECONDS = 2.0


class PrivateAddress(OSError):
    """A push endpoint's name resolved to a local, private or reserved address."""


class CheckedResolver(ThreadedResolver):
    """Resolve push-service names at send time and refuse non-public addresses.

    aiohttp connects to the addresses this returns (with the name kept for TLS SNI and
    the certificate check), so the address checked is the address used: no second
    lookup that a hostile DNS server could answer differently. A proxy named in the
    environment is exempt (the operator chose it; it then resolves the push service).
    """

    def __init__(self, allow_private: bool) -> None:
        super().__init__()
        self.allow_private = allow_private
        self.proxies = {urlsplit(url).hostname for url in getproxies().values() if url}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[dict]:
        found = await super().resolve(host, port, family)
        if self.allow_private or host in self.proxies:
            return found
        refused = [a["host"] for a in found if not is_public_address(a["host"])]
        if refused:
            raise PrivateAddress(f"{host} resolves to a non-public address ({refused[0]})")
        return found


class Session:
    """The shared aiohttp session as WebPusher calls it: no redirects, the environment's proxy.

    A push service does not redirect; following one could reach a local or private
    address that validate_subscription refused. The proxy (HTTPS_PROXY, NO_PROXY) is read
    once per push service, as aiohttp's trust_env would read it: trust_env itself looks up
    the proxy and ~/.netrc on every request, in a worker thread, which measured ~300 us of
    CPU per message, half the Sender's throughput (see benchmarks/README.md).
    """

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.proxies: dict[str, str | None] = {}  # push service origin -> proxy URL

    def post(self, url: str, **kwargs: Any) -> Any:
        service = origin(url)
        if service not in self.proxies:
            self.proxies[service] = _environment_proxy(service)
        return self.http.post(url, allow_redirects=False, proxy=self.proxies[service], **kwargs)


def _environment_proxy(service: str) -> str | None:
    """The proxy HTTP(S)_PROXY names for a push service origin, unless NO_PROXY exempts it."""
    parts = urlsplit(service)
    if proxy_bypass(parts.netloc):
        return None
    return getproxies().get(parts.scheme)


class EncryptedPusher(WebPusher):
    """pywebpush's WebPusher with its payload encrypted up front, on the calling thread.

    The ECDH step releases the GIL, so encrypting in the caller's thread overlaps with the
    loop thread's HTTP; send_async then posts what encode() returns. The encryption is
    the http_ece call WebPusher.encode makes, without the key encoding and header dict
    it builds for the older aesgcm scheme (see benchmarks/README.md, dispatch section).
    """

    def __init__(self, subscription: dict[str, str], session: Session, payload: bytes) -> None:
        keys = {"p256dh": subscription["p256dh"], "auth": subscription["auth"]}
        super().__init__(
            {"endpoint": subscription["endpoint"], "keys": keys}, aiohttp_session=session
        )
        self.body = http_ece.encrypt(
            payload,
            private_key=ec.generate_private_key(ec.SECP256R1()),  # ephemeral, per message
            dh=self.receiver_key,
            auth_secret=self.auth_key,
            version="aes128gcm",
        )

    def encode(self, data: bytes, content_encoding: str = "aes128gcm") -> dict[str, bytes]:
        return {"body": self.body}


class Request(NamedTuple):
    """One encrypted, signed message ready to post."""

    pusher: EncryptedPusher
    payload: bytes
    headers: dict[str, str]
    ttl: int
    origin: str
    now: float | None
    prepare_ms: float


class Loop:
    """A Sender's event-loop thread, its one aiohttp session and its limits on requests.

    It holds no reference to its Sender, so that a Sender dropped without close() is
    still shut down cleanly (by its weakref.finalize, also at interpreter exit).
    """

    def __init__(
        self, in_flight: int, per_origin: int, timeout: float, allow_private: bool = False
    ) -> None:
        self.calls = 0  # send/send_many calls using this loop; close() waits for them
        self.idle = threading.Condition()
        self.allow_private = allow_private
        connect = min(MAX_CONNECT_SECONDS, timeout / 3)
        self.timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect)
        self.limit = asyncio.Semaphore(in_flight)
        self.per_origin = per_origin  # set (< in_flight): requests at once per push service
        self.origin_limits: dict[str, asyncio.Semaphore] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="push-sender", daemon=True)
        self.thread.start()
        try:
            self.session = self.run(self._open(in_flight)).result()
        except BaseException:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()
            raise

    def _run(self) -> None:
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def run(self, coroutine: Any) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    async def _open(self, in_flight: int) -> Session:
        http = aiohttp.ClientSession(
            # limit == in_flight: a request never waits for a connection (the timeout is all HTTP).
            connector=aiohttp.TCPConnector(
                limit=in_flight, resolver=CheckedResolver(self.allow_private)
            ),
            cookie_jar=aiohttp.DummyCookieJar(),  # push services set none; skip the bookkeeping
        )
        return Session(http)

    async def post_all(self, requests: list[Request]) -> list[Outcome | BaseException]:
        return await asyncio.gather(*(self._post(r) for r in requests), return_exceptions=True)

    async def _post(self, request: Request) -> Outcome:
        async with self.limit:
            if not self.per_origin:
                return await self._exchange(request)
            gate = self.origin_limits.get(request.origin)
            if gate is None:
                gate = self.origin_limits[request.origin] = asyncio.Semaphore(self.per_origin)
            async with gate:
                return await self._exchange(request)

    async def _exchange(self, request: Request) -> Outcome:
        """POST one message; the timeout covers only this request's HTTP exchange."""
        started = time.perf_counter()
        try:
            answer = await request.pusher.send_async(
                request.payload, request.headers, request.ttl, timeout=self.timeout
            )
            text = await answer.text()  # read once by send_async; this only decodes it again
            outcome = classify(answer.status, answer.headers, body=text, now=request.now)
        except TimeoutError:  # also aiohttp's connect and read timeouts
            outcome = classify(None, error="timeout")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, PrivateAddress):
                outcome = Outcome("failed", None, None, f"refused: {exc.os_error}")
            else:
                outcome = classify(None, error=f"connection error: {str(exc)[:200]}")
        except aiohttp.ClientConnectionError as exc:
            outcome = classify(None, error=f"connection error: {str(exc)[:200]}")
        except aiohttp.ClientError as exc:
            outcome = Outcome("failed", None, None, f"request error: {str(exc)[:200]}")
        except UnicodeDecodeError:  # an answer whose body is not in its charset
            outcome = Outcome("failed", None, None, "unreadable answer from the push service")
        except UNSENDABLE as exc:
            outcome = Outcome("failed", None, None, f"cannot send: {str(exc)[:200]}")
        outcome.elapsed_ms = request.prepare_ms + (time.perf_counter() - started) * 1000
        return outcome

    def enter(self) -> None:
        with self.idle:
            self.calls += 1

    def leave(self) -> None:
        with self.idle:
            self.calls -= 1
            if not self.calls:
                self.idle.notify_all()

    def close(self) -> None:
        """Wait for calls in progress, close the session and its connections, stop the thread."""
        if threading.get_ident() == self.thread.ident:  # dropped on its own loop thread
            self.loop.create_task(self._shutdown()).add_done_callback(lambda _: self.loop.stop())
            return
        with self.idle:
            self.idle.wait_for(lambda: not self.calls)
        if not self.thread.is_alive():
            return
        try:
            self.run(self._shutdown()).result()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()

    async def _shutdown(self) -> None:
        await self.session.http.close()
        await self.loop.shutdown_default_executor()  # the resolver's threads, if DNS was used
