"""Prototype Senders for benchmarks/dispatch.py --sender: same encryption, VAPID and
classify() as companion.push.Sender, leaner HTTP. An experiment backing a proposal
for push.py, not production code: timeouts and errors are handled only as far as the
benchmark needs.
"""

import asyncio
import threading
import time

import aiohttp
import urllib3
from pywebpush import WebPusher

from companion import push


def _request(sender: push.Sender, sub: dict, payload: bytes, ttl: int, urgency: str,
             topic: str | None) -> tuple[bytes, dict]:
    keys = {"p256dh": sub["p256dh"], "auth": sub["auth"]}
    body = WebPusher({"endpoint": sub["endpoint"], "keys": keys}).encode(payload, "aes128gcm")
    headers = {**sender.vapid_headers(sub["endpoint"]), "TTL": str(ttl), "Urgency": urgency,
               "Content-Encoding": "aes128gcm", "Content-Type": "application/octet-stream"}
    if topic:
        headers["Topic"] = push.topic_header(topic)
    return body["body"], headers


class Urllib3Sender(push.Sender):
    """requests replaced by one urllib3 PoolManager; the same worker threads."""

    def __init__(self, *args, pool_size: int = 32, **kwargs):
        super().__init__(*args, pool_size=pool_size, **kwargs)
        self._pool = urllib3.PoolManager(num_pools=16, maxsize=pool_size, retries=False,
                                         timeout=urllib3.Timeout(total=self.timeout))

    def _attempt(self, sub, payload, ttl, urgency, topic, now):
        try:
            data, headers = _request(self, sub, payload, ttl, urgency, topic)
            answer = self._pool.request("POST", sub["endpoint"], body=data, headers=headers,
                                        redirect=False)
        except urllib3.exceptions.TimeoutError:
            return push.classify(None, error="timeout")
        except urllib3.exceptions.HTTPError as exc:
            return push.classify(None, error=f"connection error: {str(exc)[:200]}")
        return push.classify(answer.status, answer.headers,
                             body=answer.data.decode("utf-8", "replace"), now=now)


class AiohttpSender(push.Sender):
    """send_many on one asyncio loop thread with aiohttp: max_workers requests in flight."""

    def __init__(self, *args, max_workers: int = 64, **kwargs):
        super().__init__(*args, max_workers=max_workers, **kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._http = self._run(self._open())

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _open(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.max_workers),
                                     timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def _one(self, gate, key, sub, payload, ttl, urgency, topic):
        async with gate:
            started = time.perf_counter()
            try:
                data, headers = _request(self, sub, payload, ttl, urgency, topic)
                async with self._http.post(sub["endpoint"], data=data, headers=headers,
                                           allow_redirects=False) as answer:
                    outcome = push.classify(answer.status, answer.headers,
                                            body=await answer.text())
            except TimeoutError:
                outcome = push.classify(None, error="timeout")
            except aiohttp.ClientError as exc:
                outcome = push.classify(None, error=f"connection error: {str(exc)[:200]}")
            outcome.elapsed_ms = (time.perf_counter() - started) * 1000
            return key, outcome

    async def _many(self, jobs):
        gate = asyncio.Semaphore(self.max_workers)
        return await asyncio.gather(*(self._one(gate, *job) for job in jobs))

    def send_many(self, jobs):
        return self._run(self._many(jobs)) if jobs else []

    def close(self) -> None:
        self._run(self._http.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        super().close()


SENDERS = {"requests": push.Sender, "urllib3": Urllib3Sender, "aiohttp": AiohttpSender}
