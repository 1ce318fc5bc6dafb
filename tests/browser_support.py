"""Real-browser test support: seed an instance, run `companion run` on it, drive Debian's Chromium.

Facts these helpers rely on are in the team's notes on testing push and the PWA:
a persistent profile (an incognito context fails the installability check and refuses
the Push API), notifications and background-sync granted, one browser per module.
"""

import contextlib
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE_JS = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"

VAPID_SUBJECT = "mailto:ops@clinic-tests.net"
PASSWORD = "correct horse battery"  # the same as conftest.PASSWORD, which World uses

PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
    "user_agent": (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/156.0.0.0 Mobile Safari/537.36"
    ),
}
TABLET = {
    "viewport": {"width": 1024, "height": 768},
    "device_scale_factor": 2,
    "is_mobile": False,
    "has_touch": True,
}


def require_chromium() -> None:
    """Skip the browser tests without Chromium locally; fail them in CI, where it must be."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(instance: Path) -> dict[str, str]:
    return {
        **os.environ,
        "COMPANION_INSTANCE_PATH": str(instance),
        "COMPANION_VAPID_SUBJECT": VAPID_SUBJECT,
        "COMPANION_PUSH_ALLOW_PRIVATE_ENDPOINTS": "1",
    }


@contextlib.contextmanager
def instance_env(instance: Path):
    """Point create_app() (and World's in-process CLI calls) at `instance` for a while."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in server_env(instance).items():
            mp.setenv(name, value)
        yield


@dataclass
class Server:
    """A `companion run` subprocess on 127.0.0.1."""

    instance: Path
    port: int
    log_path: Path
    seeded: dict = field(default_factory=dict)
    process: subprocess.Popen | None = None
    _log: object = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database(self) -> Path:
        return self.instance / "companion.sqlite3"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 90.0) -> None:
        command = Path(sys.executable).with_name("companion")
        argv = [str(command)] if command.exists() else [sys.executable, "-m", "companion.cli"]
        argv += ["run", "--host", "127.0.0.1", "--port", str(self.port)]
        # A file, not a pipe: nobody reads a pipe while the tests run, and a full
        # pipe would block the server mid-request.
        self._log = open(self.log_path, "wb")  # noqa: SIM115  (closed in stop())
        self.process = subprocess.Popen(
            argv,
            env=server_env(self.instance),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"companion run exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"companion run did not answer /healthz in {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def statuses(self, method: str, path: str) -> list[int]:
        """Status codes of the requests the server logged for `method path`, in order.

        Counting requests (not rows) is what tells a duplicate send apart: the server
        answers a replayed check-in id with 200 and stores nothing new.
        """
        ansi = r"(?:\x1b\[[\d;]*m)*"  # werkzeug may colour its request log
        pattern = re.compile(rf'"{ansi}{method} {re.escape(path)} HTTP/1\.1{ansi}" (\d{{3}})')
        return [int(status) for status in pattern.findall(self.log())]

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Read the server's SQLite file directly (a short-lived connection of our own)."""
        with contextlib.closing(sqlite3.connect(self.database, timeout=10)) as conn:
            return conn.execute(sql, params).fetchall()


@contextlib.contextmanager
def running_server(seed):
    """Seed a fresh instance in-process with `seed(app)`, then serve it with `companion run`.

    The server's `seeded` holds what seed returned (ids, invite tokens).
    """
    from companion import create_app
    from companion.cli import migrate

    tmp = Path(tempfile.mkdtemp(prefix="companion-browser-"))
    instance = tmp / "instance"
    try:
        with instance_env(instance):
            app = create_app({"TESTING": True})
            migrate(app)
            seeded = seed(app)
        server = Server(
            instance=instance, port=free_port(), log_path=tmp / "server.log", seeded=seeded
        )
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def chromium_context(
    device: dict, *, permissions=(), origin: str | None = None, playwright=None, **options
):
    """One Chromium with a persistent (non-incognito) temporary profile; yields its context.

    `playwright`: a running sync_playwright() to launch it from, for a test that drives two
    browsers at once (the sync API cannot be started twice in one thread); its own otherwise.
    """
    from playwright.sync_api import sync_playwright

    require_chromium()
    profile = Path(tempfile.mkdtemp(prefix="companion-chromium-"))
    try:
        with contextlib.ExitStack() as stack:
            pw = playwright or stack.enter_context(sync_playwright())
            context = pw.chromium.launch_persistent_context(
                str(profile),
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_ARGS,
                **device,
                **options,
            )
            try:
                if permissions:
                    context.grant_permissions(list(permissions), origin=origin)
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(page, name: str, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


AXE_URL = "/__axe.js"


def require_axe() -> None:
    """Fail at once when axe-core was not installed, rather than wait for a script never served."""
    if not AXE_JS.is_file():
        pytest.fail(
            f"{AXE_JS} is missing: run `npm install` in the repository (scripts/test does)",
            pytrace=False,
        )


def serve_axe(context) -> None:
    """Serve axe-core at /__axe.js on every origin, for this browser only.

    The app's CSP (script-src 'self') refuses inline scripts, so axe must come from the
    page's own origin. The service worker leaves this path to the network (it only
    answers navigations and /static/), which is where the route catches it.
    """

    def axe(route) -> None:
        # A handler that raises leaves the request pending and the page waiting for good:
        # without axe-core the request fails at once instead.
        if AXE_JS.is_file():
            route.fulfill(path=str(AXE_JS), content_type="text/javascript")
        else:
            route.abort()

    context.route(f"**{AXE_URL}", axe)


def axe_violations(page, impacts=("serious", "critical")) -> list[dict]:
    """Run axe-core on the page (served by serve_axe); return violations of these impacts."""
    require_axe()
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(url=AXE_URL)
    found = page.evaluate(
        """async () => {
          const result = await axe.run(document, {resultTypes: ["violations"]});
          return result.violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map((n) => `${n.target.join(" ")}: ${n.failureSummary}`),
          }));
        }"""
    )
    return [v for v in found if v["impact"] in impacts]


def wait_until(page, check, timeout: float = 10.0, interval_ms: int = 50):
    """Poll `check()` until it returns something truthy; return it.

    Waits with page.wait_for_timeout, not time.sleep, so Playwright keeps dispatching
    events (CDP events included) meanwhile.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        page.wait_for_timeout(interval_ms)


def service_worker_registration(cdp, page, scope: str) -> str:
    """Return the registrationId of the live service worker registration for `scope`.

    Needs a page-level CDP session: ServiceWorker.enable replays the existing
    registrations as workerRegistrationUpdated events.
    """
    registrations: dict[str, dict] = {}

    def updated(event):
        for registration in event["registrations"]:
            registrations[registration["registrationId"]] = registration

    cdp.on("ServiceWorker.workerRegistrationUpdated", updated)
    cdp.send("ServiceWorker.enable")

    def live():
        return next(
            (
                r["registrationId"]
                for r in registrations.values()
                if r["scopeURL"] == scope and not r["isDeleted"]
            ),
            None,
        )

    found = wait_until(page, live, timeout=30)
    assert found is not None, f"no live service worker registration for {scope}: {registrations}"
    return found


# ---------------------------------------------------------------- the client's phone, as fixtures

PHONE_GRANTS = ("notifications", "background-sync")

SHELL_HAS_CHECKIN = """async () => {
    for (const name of await caches.keys()) {
      const cache = await caches.open(name);
      if (await cache.match("/checkin") && await cache.match("/static/js/checkin.js")) return true;
    }
    return false;
}"""


def client_phone_fixtures(seed, *, greeting: str | None = None, **options):
    """Return the module-scoped `server` and `phone` fixtures and the per-test `page` fixture
    of a client-side browser module: `server = ...` at module level is all a module needs.

    server: `companion run` on an instance seeded by `seed(app)`, which returns at least the
    invite `token` of a client. phone: that client's phone (PHONE, notifications and
    background sync granted, `options` passed on to the context, e.g. timezone_id), signed in
    from the invite, the service worker installed and the check-in form's shell cached;
    `greeting` is the welcome page's heading to expect. page: a new tab of the phone, back
    online and without a draft afterwards; an uncaught error in it fails the test.
    """
    from playwright.sync_api import expect

    @pytest.fixture(scope="module", name="server")
    def server_fixture():
        require_chromium()
        with running_server(seed) as running:
            yield running

    @pytest.fixture(scope="module", name="phone")
    def phone_fixture(server):
        with chromium_context(
            PHONE,
            permissions=PHONE_GRANTS,
            origin=server.url,
            base_url=server.url,
            **options,
        ) as context:
            context.set_default_timeout(15_000)
            serve_axe(context)
            page = context.new_page()
            page.goto(f"/i/{server.seeded['token']}")
            page.get_by_role("button", name="Open my aftercare").tap()
            expect(page).to_have_url(f"{server.url}/welcome")
            if greeting is not None:
                expect(page.get_by_role("heading", level=1)).to_have_text(greeting)
            page.evaluate("() => navigator.serviceWorker.ready.then(() => true)")
            page.goto("/checkin")  # under the worker's control: stores the form's shell
            assert wait_until(page, lambda: page.evaluate(SHELL_HAS_CHECKIN)), "shell not cached"
            page.close()
            yield context

    @pytest.fixture(name="page")
    def page_fixture(phone):
        page = phone.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(error))
        yield page
        phone.set_offline(False)
        if page.url.startswith("http"):
            page.evaluate("() => localStorage.clear()")
        page.close()
        assert not errors, f"uncaught errors in the page: {errors}"

    return server_fixture, phone_fixture, page_fixture
