"""The installable PWA in a real Chromium: install check, service worker, offline, push, a11y.

One `companion run` server and one Chromium (persistent profile, phone viewport) for the
whole module; each test opens its own tab. How the browser is driven (CDP for push and
Background Sync, no notification clicks) follows the team's notes on testing push and
the PWA.
"""

import json
import re

import pytest
from browser_support import (
    PHONE_GRANTS,
    axe_violations,
    client_phone_fixtures,
    screenshot,
    service_worker_registration,
    wait_until,
)
from conftest import World, checkin_body
from PIL import Image
from playwright.sync_api import expect

from companion.reminders.push import DISCREET_BODY, DISCREET_TITLE, build_payload

CLIENT_PAGES = {
    "home": "/",
    "checkin": "/checkin",
    "reminders": "/reminders",
    "settings": "/settings",
    "welcome": "/welcome",
    "offline": "/offline",
}
SYNC_TAG = "checkin-outbox"

SAVED_OFFLINE = "Saved on this phone, will send when online."
ONE_QUEUED = "1 check-in saved on this phone, will send when online"
SENT_LATER = "Your check-in saved on this phone has been sent."
PUSH_UNREACHABLE = "Could not reach the push service. Check your connection and try again."
DENIED_HELP = "allow notifications for this site in your browser settings"


def seed(app) -> dict:
    world = World(app)
    # One check-in on file, so the home page has an assessment and a recovery chart.
    answer = world.c1.post("/api/checkins", checkin_body(redness=1, swelling=1, pain=1))
    assert answer.status_code == 201, answer.json
    invite = world.p1.post(f"/api/clients/{world.client1['id']}/invites")
    assert invite.status_code == 201, invite.json
    return {"token": invite.json["token"], "client_id": world.client1["id"]}


server, phone, page = client_phone_fixtures(seed, greeting="Welcome, Alice")


def cached_paths(page) -> set[str]:
    return set(
        page.evaluate("""async () => {
        const paths = [];
        for (const name of await caches.keys()) {
          if (!name.startsWith("companion-shell-")) continue;
          for (const request of await (await caches.open(name)).keys()) paths.push(new URL(request.url).pathname);
        }
        return paths;
    }""")
    )


def queued_ids(page) -> list[str]:
    """Ids of the check-ins waiting in this phone's outbox (IndexedDB)."""
    return page.evaluate(
        "async () => (await CompanionOutbox.createOutbox().pending()).map((record) => record.id)"
    )


def outbox_idle(page) -> bool:
    """True when no replay runs or is due: no Web Lock held or awaited, no Background Sync pending.

    A sync registered while offline fires once the phone is back online; until it has run,
    a replay by the worker may still start.
    """
    return page.evaluate("""async () => {
        const {held = [], pending = []} = await navigator.locks.query();
        if ([...held, ...pending].some((lock) => lock.name === "checkin-outbox")) return false;
        const registration = await navigator.serviceWorker.getRegistration("/");
        return !(await registration?.sync?.getTags() ?? []).includes("checkin-outbox");
    }""")


# Counts the outbox replays this page has finished (each runs under the Web Lock);
# runs before the page's own scripts.
COUNT_REPLAYS = """
window.__replaysDone = 0;
const request = LockManager.prototype.request;
LockManager.prototype.request = function (name, ...rest) {
  const granted = request.call(this, name, ...rest);
  if (name === "checkin-outbox") granted.finally(() => (window.__replaysDone += 1));
  return granted;
};
"""


def rows_for(server, checkin_id: str) -> int:
    return server.query("SELECT count(*) FROM checkins WHERE id = ?", (checkin_id,))[0][0]


def checkin_posts(server) -> list[int]:
    return server.statuses("POST", "/api/checkins")


def check_in_offline(page, phone, note: str) -> str:
    """Fill and send the form with the phone offline; return the queued check-in's id."""
    phone.set_offline(True)
    page.get_by_role("group", name="Redness").get_by_role("radio", name="1 Slight pink").check()
    page.get_by_role("group", name="Swelling").get_by_role("radio", name="0 None").check()
    page.get_by_role("group", name="Pain").get_by_role("radio", name="2", exact=True).check()
    page.get_by_label("Note for your clinic (optional)").fill(note)
    page.get_by_role("button", name="Send check-in").click()
    expect(page.locator("#answer-saved .answer-message")).to_have_text(SAVED_OFFLINE)
    # The count is written last, after the Background Sync registration.
    expect(page.locator("#outbox-status")).to_have_text(ONE_QUEUED)
    [checkin_id] = queued_ids(page)
    return checkin_id


# ---------------------------------------------------------------- installability


def test_client_home_passes_chromiums_installability_check(page, server):
    page.goto("/")
    cdp = page.context.new_cdp_session(page)
    assert cdp.send("Page.getInstallabilityErrors")["installabilityErrors"] == []
    manifest = cdp.send("Page.getAppManifest")
    assert manifest["url"] == f"{server.url}/manifest.webmanifest"
    parsed = json.loads(manifest["data"])
    assert parsed["display"] == "standalone" and parsed["scope"] == "/"
    assert {"192x192", "512x512"} <= {icon["sizes"] for icon in parsed["icons"]}
    cdp.detach()


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        pytest.param(
            {"icons": []}, {"manifest-missing-suitable-icon", "no-acceptable-icon"}, id="no-icons"
        ),
        pytest.param(
            {
                "icons": [
                    {"src": "/static/icons/favicon-32.png", "sizes": "32x32", "type": "image/png"}
                ]
            },
            {"manifest-missing-suitable-icon", "no-acceptable-icon"},
            id="icon-too-small",
        ),
    ],
)
def test_a_broken_manifest_fails_the_installability_check(page, server, broken, expected):
    good = page.request.get("/manifest.webmanifest").json()
    bad = {**good, **broken}
    cdp = page.context.new_cdp_session(page)
    # The worker answers /manifest.webmanifest from its cache, where no page route can
    # reach it: let this tab bypass the worker so the route serves the broken copy.
    cdp.send("Network.enable")
    cdp.send("Network.setBypassServiceWorker", {"bypass": True})
    served = []

    def broken_manifest(route):
        served.append(route.request.url)
        route.fulfill(body=json.dumps(bad), content_type="application/manifest+json")

    page.route("**/manifest.webmanifest", broken_manifest)
    page.goto("/")
    errors = {
        e["errorId"] for e in cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
    }
    assert served, "the broken manifest was never fetched"
    assert expected <= errors, errors
    cdp.detach()


# ---------------------------------------------------------------- service worker


def test_service_worker_registers_controls_the_page_and_keeps_the_shell(page, server):
    page.goto("/")
    page.reload()
    state = page.evaluate("""async () => {
        const registration = await navigator.serviceWorker.getRegistration("/");
        return {
          scope: registration.scope,
          active: registration.active.scriptURL,
          activeState: registration.active.state,
          controller: navigator.serviceWorker.controller?.scriptURL ?? null,
        };
    }""")
    assert state == {
        "scope": f"{server.url}/",
        "active": f"{server.url}/sw.js",
        "activeState": "activated",
        "controller": f"{server.url}/sw.js",
    }
    paths = cached_paths(page)
    assert {
        "/offline",
        "/checkin",
        "/static/app.css",
        "/static/js/app.js",
        "/static/js/outbox.js",
        "/manifest.webmanifest",
        "/static/icons/icon-192.png",
    } <= paths
    # The home page shows the recovery so far: health data never goes into the cache.
    assert "/" not in paths and not any(p.startswith("/api/") for p in paths)


def test_offline_the_checkin_form_opens_from_cache_and_other_pages_fall_back(page, phone, server):
    page.goto("/checkin")
    phone.set_offline(True)
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("How is your skin?")
    expect(page.locator("#checkin-form")).to_be_visible()
    for path in ("/", "/reminders"):
        page.goto(path)
        expect(page).to_have_url(f"{server.url}{path}")
        expect(page.get_by_role("heading", level=1)).to_have_text("You're offline")
        expect(page.get_by_role("link", name="Check in", exact=True).last).to_be_visible()
    phone.set_offline(False)
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello, Alice")


# ---------------------------------------------------------------- push


def test_a_push_from_the_server_shows_a_notification_with_its_deep_link(page, phone, server):
    page.goto("/reminders")
    cdp = phone.new_cdp_session(page)
    registration = service_worker_registration(cdp, page, f"{server.url}/")
    # The payloads are built by the server's own code, exactly as the dispatcher sends them.
    plain = build_payload(
        "Cool and calm",
        "Rinse with lukewarm water, no make-up today.",
        "/reminders#n42",
        "reminder-42",
        42,
    )
    discreet = build_payload(
        "Sunscreen", "SPF 50 before going out.", "/reminders#n43", "reminder-43", 43, discreet=True
    )
    worker = next(w for w in phone.service_workers if w.url == f"{server.url}/sw.js")
    # Count the notifications the worker has finished showing. Polling getNotifications()
    # while a push handler runs loses notifications (see the notes), so wait on this
    # count instead, then read them once.
    worker.evaluate("""() => {
        const show = self.registration.showNotification.bind(self.registration);
        self.__shown = 0;
        self.registration.showNotification = (...args) => show(...args).then(() => { self.__shown += 1; });
    }""")
    for payload in (plain, discreet):
        cdp.send(
            "ServiceWorker.deliverPushMessage",
            {"origin": server.url, "registrationId": registration, "data": payload.decode()},
        )
    assert wait_until(page, lambda: worker.evaluate("() => self.__shown") == 2)
    shown = page.evaluate("""async () => {
        const registration = await navigator.serviceWorker.ready;
        return (await registration.getNotifications()).map((n) => (
          {title: n.title, body: n.body, tag: n.tag, data: n.data, icon: n.icon}));
    }""")
    by_tag = {n["tag"]: n for n in shown}
    assert by_tag["reminder-42"] == {
        "title": "Cool and calm",
        "body": "Rinse with lukewarm water, no make-up today.",
        "tag": "reminder-42",
        "data": {"url": "/reminders#n42", "id": 42},
        "icon": f"{server.url}/static/icons/icon-192.png",
    }
    assert (by_tag["reminder-43"]["title"], by_tag["reminder-43"]["body"]) == (
        DISCREET_TITLE,
        DISCREET_BODY,
    )

    # "Clicking it opens the deep link": no CDP command clicks a notification, and a
    # synthetic notificationclick cannot open a window (see the notes). So this asks the
    # running worker which path its click handler would open for the notification shown,
    # using the worker's own targetUrl(); the focus/navigate/openWindow part is covered
    # by service-worker/sw.test.mjs.
    target = "([data, origin]) => targetUrl(data, origin)"
    assert worker.evaluate(target, [by_tag["reminder-42"]["data"], server.url]) == "/reminders#n42"
    for foreign in ("https://evil.example/x", "//evil.example/x", "javascript:alert(1)"):
        assert worker.evaluate(target, [{"url": foreign}, server.url]) == "/"
    page.goto(server.url + worker.evaluate(target, [by_tag["reminder-42"]["data"], server.url]))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your reminders")
    cdp.detach()


# ---------------------------------------------------------------- offline check-ins


def test_an_offline_checkin_is_queued_then_sent_once_when_back_online(page, phone, server):
    page.goto("/checkin")
    posts = len(checkin_posts(server))
    checkin_id = check_in_offline(page, phone, "Written in the lift, no signal")
    assert rows_for(server, checkin_id) == 0
    phone.set_offline(False)  # the page's "online" listener replays the outbox
    expect(page.locator("#outbox-status")).to_have_text("")
    # The answer takes the place of the "will send when online" card it was sent from.
    expect(page.locator("#answer-expected")).to_contain_text(SENT_LATER)
    expect(page.locator("#answer-saved")).to_be_hidden()
    # Background Sync may replay too once the phone is online: let every replay finish.
    assert wait_until(page, lambda: outbox_idle(page))
    assert rows_for(server, checkin_id) == 1
    assert queued_ids(page) == []
    assert checkin_posts(server)[posts:] == [201], "the check-in was sent more than once"
    note = server.query("SELECT note FROM checkins WHERE id = ?", (checkin_id,))[0][0]
    assert note == "Written in the lift, no signal"


def test_a_checkin_with_a_photo_shows_the_assessment_and_stores_the_photo(page, server, tmp_path):
    photo = tmp_path / "cheek.jpg"
    Image.new("RGB", (1200, 900), (220, 120, 110)).save(photo, "JPEG")
    page.goto("/checkin")
    page.get_by_role("group", name="Redness").get_by_role("radio", name="0 None").check()
    page.get_by_role("group", name="Swelling").get_by_role(
        "radio", name="1 Barely noticeable"
    ).check()
    page.get_by_role("group", name="Pain").get_by_role("radio", name="0", exact=True).check()
    page.get_by_label("Add a photo (optional)").set_input_files(str(photo))
    expect(page.locator("#photos-count")).to_have_text("1 photo ready to send")
    page.get_by_label("Note for your clinic (optional)").fill("with a photo")
    page.get_by_role("button", name="Send check-in").click()
    result = page.locator("#answer-expected")
    expect(result).to_contain_text("1 photo sent to your clinic.")
    expect(result).to_contain_text("normal")
    rows = server.query(
        "SELECT p.width, p.height FROM photos p JOIN checkins c ON c.id = p.checkin_id"
        " WHERE c.note = 'with a photo'"
    )
    assert rows == [(1200, 900)]


def test_page_replay_and_background_sync_together_send_a_checkin_once(page, phone, server):
    page.goto("/checkin")
    cdp = phone.new_cdp_session(page)
    registration = service_worker_registration(cdp, page, f"{server.url}/")
    posts = len(checkin_posts(server))
    checkin_id = check_in_offline(page, phone, "Queued for two replays")
    # Back online, the page replays (online event) while the worker's sync handler
    # replays too: the Web Lock and the per-record lease must keep it to one send.
    phone.set_offline(False)
    cdp.send(
        "ServiceWorker.dispatchSyncEvent",
        {
            "origin": server.url,
            "registrationId": registration,
            "tag": SYNC_TAG,
            "lastChance": False,
        },
    )
    expect(page.locator("#outbox-status")).to_have_text("")
    assert wait_until(page, lambda: outbox_idle(page))
    assert rows_for(server, checkin_id) == 1
    assert queued_ids(page) == []
    assert checkin_posts(server)[posts:] == [201], "the check-in was sent more than once"
    cdp.detach()


def test_background_sync_sends_a_queued_checkin_with_no_page_open(page, phone, server):
    page.goto("/checkin")
    posts = len(checkin_posts(server))
    checkin_id = check_in_offline(page, phone, "Sent by the service worker")
    # Leave the app: from here on only the service worker can send it.
    page.goto("about:blank")
    cdp = phone.new_cdp_session(page)
    registration = service_worker_registration(cdp, page, f"{server.url}/")
    phone.set_offline(False)
    cdp.send(
        "ServiceWorker.dispatchSyncEvent",
        {
            "origin": server.url,
            "registrationId": registration,
            "tag": SYNC_TAG,
            "lastChance": False,
        },
    )
    assert wait_until(page, lambda: rows_for(server, checkin_id) == 1, timeout=10), (
        "the service worker's sync handler did not send the queued check-in"
    )
    cdp.detach()
    # Back in the app: nothing left to send, and nothing was sent twice. The page
    # replays its outbox on load: wait for that replay to finish.
    page.add_init_script(COUNT_REPLAYS)
    page.goto("/checkin")
    expect(page.locator("#checkin-form")).to_be_visible()
    page.wait_for_function("() => window.__replaysDone >= 1")
    assert wait_until(page, lambda: outbox_idle(page))
    expect(page.locator("#outbox-status")).to_have_text("")
    assert queued_ids(page) == []
    assert checkin_posts(server)[posts:] == [201], "the check-in was sent more than once"


# ---------------------------------------------------------------- accessibility and layout


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_client_pages_have_no_serious_accessibility_violations(page, scheme):
    page.emulate_media(color_scheme=scheme)
    found = {}
    for name, path in CLIENT_PAGES.items():
        page.goto(path)
        assert page.evaluate("() => matchMedia('(prefers-color-scheme: dark)').matches") == (
            scheme == "dark"
        )
        violations = axe_violations(page)
        if violations:
            found[name] = violations
    assert not found, json.dumps(found, indent=2)


def test_the_accessibility_scan_does_catch_a_violation(page):
    # A control for the test above: a button with no accessible name is a critical one.
    page.goto("/offline")
    page.evaluate("() => document.querySelector('main').append(document.createElement('button'))")
    assert "button-name" in {v["id"] for v in axe_violations(page)}


def test_client_pages_at_phone_size_screenshots_and_320_px(page):
    for name, path in CLIENT_PAGES.items():
        page.goto(path)
        screenshot(page, f"phone-{name}")
    page.emulate_media(color_scheme="dark")
    for name in ("home", "checkin"):
        page.goto(CLIENT_PAGES[name])
        screenshot(page, f"phone-{name}-dark")
    page.emulate_media(color_scheme="light")
    # The smallest phones still in use are 320 CSS pixels wide: nothing may scroll sideways.
    page.set_viewport_size({"width": 320, "height": 640})
    too_wide = {}
    for name, path in CLIENT_PAGES.items():
        page.goto(path)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        if width > 320:
            too_wide[name] = width
        if name in ("home", "checkin", "settings"):
            screenshot(page, f"phone320-{name}")
    assert not too_wide, f"pages wider than 320 px: {too_wide}"


# ---------------------------------------------------------------- turning on reminders

# Counts the calls that would prompt or subscribe, and the subscription lookups that
# have answered (the load-time state check makes one); runs before the page's own scripts.
COUNT_PROMPTS = """
window.__calls = {requestPermission: 0, subscribe: 0};
window.__lookupsDone = 0;
const getSubscription = PushManager.prototype.getSubscription;
PushManager.prototype.getSubscription = function (...args) {
  const found = getSubscription.apply(this, args);
  found.finally(() => (window.__lookupsDone += 1));
  return found;
};
const requestPermission = Notification.requestPermission.bind(Notification);
Notification.requestPermission = (...args) => {
  window.__calls.requestPermission += 1;
  return requestPermission(...args);
};
const subscribe = PushManager.prototype.subscribe;
PushManager.prototype.subscribe = function (...args) {
  window.__calls.subscribe += 1;
  return subscribe.apply(this, args);
};
"""


def reminder_state(page) -> dict:
    return page.evaluate("""async () => {
        const registration = await navigator.serviceWorker.ready;
        const subscription = await registration.pushManager.getSubscription();
        return {calls: window.__calls, permission: Notification.permission,
                subscribed: subscription !== null};
    }""")


def test_reminders_are_not_asked_for_on_load(page):
    page.add_init_script(COUNT_PROMPTS)
    for path in ("/welcome", "/", "/settings"):
        page.goto(path)
        expect(page.get_by_role("button", name="Turn on reminders")).to_be_visible()
        # The load-time reminder state check is asynchronous: wait until it has looked.
        page.wait_for_function("() => window.__lookupsDone >= 1")
        assert reminder_state(page) == {
            "calls": {"requestPermission": 0, "subscribe": 0},
            "permission": "granted",
            "subscribed": False,
        }
        expect(page.locator("#reminders-status")).to_have_text("")


def test_turning_on_reminders_reports_an_unreachable_push_service(page, server):
    # pushManager.subscribe() never settles in headless Chromium (no Google push
    # service): the page must give up after its timeout and say so.
    page.add_init_script(COUNT_PROMPTS)
    page.goto("/welcome")
    button = page.get_by_role("button", name="Turn on reminders")
    button.click()
    status = page.locator("#reminders-status")
    expect(status).to_have_text("Turning on reminders…")
    expect(button).to_be_disabled()  # no second subscribe while the first is pending
    expect(status).to_have_text(PUSH_UNREACHABLE, timeout=12_000)
    expect(button).to_be_enabled()
    state = reminder_state(page)
    assert state["calls"] == {"requestPermission": 1, "subscribe": 1}
    assert not state["subscribed"]
    client_id = server.seeded["client_id"]
    assert server.query(
        "SELECT count(*) FROM push_subscriptions WHERE owner_kind = 'client' AND owner_id = ?",
        (client_id,),
    ) == [(0,)]


def test_with_notifications_blocked_the_page_explains_how_to_allow_them(page, phone, server):
    cdp = phone.new_cdp_session(page)
    cdp.send(
        "Browser.setPermission",
        {"permission": {"name": "notifications"}, "setting": "denied", "origin": server.url},
    )
    try:
        page.goto("/welcome")
        status = page.locator("#reminders-status")
        # Shown on load already: the button alone would look broken.
        expect(status).to_contain_text(DENIED_HELP)
        page.get_by_role("button", name="Turn on reminders").click()
        expect(status).to_have_text(re.compile(r"^Notifications are blocked for this site\."))
        expect(status).to_contain_text(DENIED_HELP)
    finally:
        cdp.detach()
        phone.grant_permissions(list(PHONE_GRANTS), origin=server.url)
    assert page.evaluate("() => Notification.permission") == "granted"


def test_a_phone_in_the_saved_zone_under_its_old_name_gets_no_hint(page, phone, server):
    # Chromium names Asia/Kolkata "Asia/Calcutta" (ICU's old alias): a client saved in Kolkata,
    # in Kolkata, was told "This phone is set to Asia/Calcutta, a different time zone".
    page.goto("/settings")
    page.get_by_label("Time zone for your reminders").select_option("Asia/Kolkata")
    page.get_by_role("button", name="Save settings").tap()
    expect(page.get_by_label("Time zone for your reminders")).to_have_value("Asia/Kolkata")
    india = phone.new_page()
    try:
        cdp = phone.new_cdp_session(india)
        zone = lambda name: cdp.send("Emulation.setTimezoneOverride", {"timezoneId": name})  # noqa: E731
        zone("Asia/Kolkata")
        india.goto("/settings")
        assert india.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") in (
            "Asia/Calcutta",
            "Asia/Kolkata",
        )
        expect(india.get_by_label("Time zone for your reminders")).to_have_value("Asia/Kolkata")
        expect(india.locator("#tz-hint")).to_be_hidden()
        # Another zone still gets the hint.
        zone("")
        zone("Asia/Dhaka")
        india.reload()
        expect(india.locator("#tz-hint")).to_contain_text("This phone is set to Asia/Dhaka")
        cdp.detach()
    finally:
        india.close()
        page.get_by_label("Time zone for your reminders").select_option("Europe/London")
        page.get_by_role("button", name="Save settings").tap()
        expect(page.get_by_label("Time zone for your reminders")).to_have_value("Europe/London")
