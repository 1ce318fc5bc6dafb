"""Every server-rendered page (not the JSON API, which schemathesis fuzzes) under nasty input.

For each non-API route and each role (signed out, client, practitioner, owner, another
clinic's practitioner) hypothesis sends random and hostile values as path parts, query
strings and form fields (urlencoded and multipart; the page's own form as the baseline, with
the CSRF token most of the time): empty, huge, NUL, percent-encoded lone surrogates and
invalid UTF-8, negative and huge numbers, impossible dates, repeated and unknown keys,
another clinic's ids. The answer is never a 500; and when it is a refusal (4xx) nothing
stored changed (every table but the audit log, before and after).

Derandomized and small (PAGE_FUZZ_EXAMPLES per route and role, 3 by default) so that it
can live in the suite; raise it to hunt: `PAGE_FUZZ_EXAMPLES=40 pytest tests/test_page_fuzz.py`.
"""

import json
import os
import re
import sqlite3
from html.parser import HTMLParser
from urllib.parse import quote, quote_from_bytes

import pytest
from conftest import PASSWORD, Api, sql
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from test_isolation import snapshot, template_world_fixture, world_fixture  # noqa: F401
from werkzeug.datastructures import MultiDict

from companion.reminders.links import checkin_token, unsubscribe_token

EXAMPLES = int(os.environ.get("PAGE_FUZZ_EXAMPLES", "3"))
SEED = os.environ.get("PAGE_FUZZ_SEED")  # to hunt with other draws than the suite's
ROLES = ("anon", "c1", "colleague", "p1", "p2")  # p1 owns clinic 1; colleague works there
# Tables a refusal may touch by design: the audit log, and counters of failed attempts.
SKIP = ("audit_log", "login_failures")

# Nasty values, as the raw bytes a client could send (percent-encoded on the wire).
NASTY: list[bytes] = [
    b"",
    b" ",
    b"\x00",
    b"a\x00b",
    b"\xff\xfe",
    b"\xed\xa0\x80",  # a lone surrogate, as UTF-8 would spell it
    b"\xc3",  # a cut-off sequence
    "\U0001f600 \u202e".encode(),
    b"x" * 5000,
    b"-1",
    b"0",
    b"-0",
    b"1e309",
    b"NaN",
    b"inf",
    b"99999999999999999999999999",
    b"9223372036854775808",
    b"1.5",
    b"0x10",
    b"0000-00-00",
    b"9999-12-31",
    b"0001-01-01",
    b"2026-02-30",
    b"2026-11-30T25:61",
    b"9999-12-31T23:59",
    b"24:00",
    b"23:59:60",
    b"-01:00",
    b"7:5",
    b"0001-01-01T00:00",
    b"on",
    b"true",
    b"[]",
    b"{}",
    b"null",
    b"<script>alert(1)</script>",
    b"' OR 1=1 --",
    b"../../etc/passwd",
    b"//evil.example/x",
    b"https://evil.example/",
    b"Europe/Nowhere",
    b"zz",
    b"es",
    b"%",
    b"[" * 50000 + b"]" * 50000,  # JSON nested deeper than Python's stack (the protocol import)
    b'{"steps": [{"key": {"a": [1]}, "at": 1e999}]}',
]
QUERY_KEYS = [
    "q", "from", "to", "page", "session", "lang", "date", "status", "severity", "practitioner",
    "client_id", "next", "id", "limit", "offset", "cursor", "format", "sort", "kind", "action",
]  # fmt: skip
RAW_TYPES = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "multipart/form-data",
    "multipart/form-data; boundary=x",
    "application/json",
    "text/plain",
    "application/octet-stream",
]
RAW_BODIES = [
    b'--x\r\nContent-Disposition: form-data; name="logo"; filename="a.jpg"\r\n\r\nx',  # cut off
    b"",
    b"%zz=%&&==&=x&%00=%ff",
    b"name=" + b"%41" * 20000,
    b"--x\r\nContent-Disposition: form-data\r\n\r\nnoname\r\n--x--\r\n",
    b'--x\r\nContent-Disposition: form-data; name="logo"; filename="\x00.jpg"\r\n\r\n\xff\r\n--x',
    b'{"name": "x", "csrf_token": "y"}',
    b"\xff\xfe\x00\x00" * 100,
]
HEADERS = [
    "Accept-Language", "Accept", "Origin", "Referer", "If-None-Match", "If-Modified-Since",
    "Range", "If-Range", "X-Forwarded-For", "X-Forwarded-Proto", "User-Agent", "Sec-Fetch-Site",
]  # fmt: skip
HEADER_VALUES = [
    "", "*", "es", "es-ES,es;q=0.9", "zz;q=abc", "*;q=-1", "x" * 3000, "null", "\x7f",
    "https://evil.example", "0000-00-00", "Thu, 01 Jan 1970 00:00:00 GMT",
    "Fri, 31 Dec 9999 23:59:59 GMT", "bytes=0-0", "bytes=99999999999999999999-", "bytes=5-1",
    "bytes=-0", "bytes=0-1,2-3,4-5", '"abc"', "W/\"x\"", "1.2.3.4, ::1, junk", "gopher",
    "cross-site", "application/json", "text/html;q=0",
]  # fmt: skip
LAST = (
    "sign-out",
    "logout",
    "/clinic/login",
    "/clinic/setup",
    "/i/",
    "/team",
    "/erase",
    "/password",
    "/two-factor",
    "/calendar/reset",
)
PATH_TEXT = [
    "x", "0", "-1", "%00", "%FF", "%ED%A0%80", "a" * 300, "..", "%2E%2E", "%2F", " ", "%20",
    "99999999999999999999999999", "deadbeef", "1.jpg", "ffffff", "zzzzzz",
]  # fmt: skip


class Forms(HTMLParser):
    """Every form of a page: its action, method, enctype and fields (name, default value)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self._select = None
        self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append(
                {
                    "action": a.get("action") or "",
                    "method": (a.get("method") or "get").upper(),
                    "multipart": "multipart" in (a.get("enctype") or ""),
                    "fields": [],
                }
            )
            return
        if not self.forms or not a.get("name"):
            return
        fields = self.forms[-1]["fields"]
        if tag == "input":
            kind = (a.get("type") or "text").lower()
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            if kind == "file":
                fields.append((a["name"], b"", True))
                return
            fields.append(
                (a["name"], (a.get("value") or ("on" if kind == "checkbox" else "")), False)
            )
        elif tag == "button" and a.get("value") is not None:
            fields.append((a["name"], a["value"], False))
        elif tag == "select":
            self._select = [a["name"], None]
            fields.append(self._select)
        elif tag == "option" and self._select is not None:
            if self._select[1] is None or "selected" in a:
                self._select[1] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = [a["name"], ""]
            fields.append(self._textarea)

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


class FormList(list):
    """Forms, named briefly when hypothesis reports a failing example's strategy."""

    def __repr__(self):
        return f"<{len(self)} forms>"


def forms_of(html: str) -> list[dict]:
    parser = Forms()
    parser.feed(html)
    for form in parser.forms:
        form["fields"] = [(f[0], f[1] or "", f[2] if len(f) > 2 else False) for f in form["fields"]]
    return parser.forms


def page_routes(app) -> list:
    out = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/api/", "/static/")):
            continue
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        out.append((rule, methods))
    # Routes that may end a sign-in or lock a role out go last, so the roles stay as they are
    # for the others.
    return sorted(out, key=lambda r: (any(w in r[0].rule for w in LAST), r[0].rule))


# Building one request ---------------------------------------------------------------------


def enc(value: bytes) -> str:
    return quote_from_bytes(value, safe="")


def fill_path(rule, world, choice: dict) -> str:
    """The rule's path with each parameter an id of ours, of the other clinic, or junk."""
    if not rule.arguments:
        return rule.rule
    own = {
        "client_id": [world.client1["id"], world.client2["id"]],
        "session_id": [world.session1["id"], world.session2["id"]],
        "flag_id": [world.flag1["id"]],
        "clinic_id": [world.clinic1["id"], world.clinic2["id"]],
        "action": ["acknowledge", "called", "resolve"],
    } | world.fuzz_tokens.get(rule.endpoint, {})
    parts = []
    for dynamic, argument in rule._trace:
        if not dynamic:
            parts.append(argument)
            continue
        pick = choice[argument]
        known = own.get(argument, [])
        if isinstance(pick, int) and known:
            parts.append(str(known[pick % len(known)]))
        else:
            parts.append(
                PATH_TEXT[pick if isinstance(pick, int) else 0] if pick != "big" else "1" * 30
            )
    path = "".join(parts)
    return path.split("|", 1)[1] if "|" in path else path


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from(["\ud800", "\x00", "x" * 3000, "9999-12-31T23:59", "P1D", "es", "en"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text(max_size=5) | st.sampled_from(["\ud800", "en", "at"]), inner, max_size=3
        )
    ),
    max_leaves=6,
)


@st.composite
def mutated_json(draw, doc):
    """`doc` with one value somewhere in it replaced, a key added, or an item dropped."""
    node = doc
    while isinstance(node, (list, dict)) and node and draw(st.booleans()):
        keys = list(range(len(node))) if isinstance(node, list) else sorted(node)
        key = draw(st.sampled_from(keys))
        if not isinstance(node[key], (list, dict)) or not node[key]:
            node[key] = draw(JSON_VALUES)
            break
        node = node[key]
    else:
        if isinstance(node, dict):
            node[draw(st.sampled_from(["\ud800", "extra", "key", "es", "fr"]))] = draw(JSON_VALUES)
        elif isinstance(node, list) and node:
            node.pop(draw(st.integers(0, len(node) - 1)))
    return json.dumps(doc)


@st.composite
def requests(draw, rule, methods, forms):
    method = draw(st.sampled_from([*methods, "DELETE", "PUT"]))  # a 405 is a page too
    path_choice = {}
    for dynamic, argument in rule._trace:
        if dynamic:
            path_choice[argument] = draw(
                st.one_of(st.integers(0, 5), st.sampled_from(["big", *range(len(PATH_TEXT))]))
            )
    nasty = (
        st.sampled_from(NASTY)
        | st.binary(max_size=40)
        | st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass"))
    )
    # The query keys of the route's own search forms, and the usual suspects.
    keys = sorted({n for f in forms if f["method"] == "GET" for n, _, _ in f["fields"]})
    query = draw(st.lists(st.tuples(st.sampled_from(keys + QUERY_KEYS), nasty), max_size=4))
    form_fields: list[tuple[str, bytes]] = []
    multipart = False
    files = []
    if method == "POST":
        mine = [f for f in forms if f["method"] == "POST"]
        if mine:
            form = draw(st.sampled_from(mine))
            multipart = form["multipart"]
            for name, value, is_file in form["fields"]:
                if is_file:
                    files.append(name)
                    continue
                if name == "csrf_token":
                    continue
                form_fields.append((name, value.encode() if isinstance(value, str) else value))
        names = sorted({n for n, _ in form_fields}) or ["name"]
        changes = draw(
            st.lists(st.tuples(st.sampled_from([*names, "unknown", "steps"]), nasty), max_size=4)
        )
        # A field that holds JSON (the protocol's import): the same document, one value changed.
        for i, (name, value) in enumerate(form_fields):
            if value[:1] in (b"[", b"{") and draw(st.booleans()):
                try:
                    doc = json.loads(value)
                except ValueError:
                    continue
                form_fields[i] = (name, draw(mutated_json(doc)).encode())
        for name, value in changes:
            how = draw(st.sampled_from(["one", "all", "repeat"]))
            at = [i for i, (n, _) in enumerate(form_fields) if n == name]
            if how == "one" and at:  # one of a repeated field's values (a protocol step's)
                form_fields[draw(st.sampled_from(at))] = (name, value)
                continue
            if how == "all":
                form_fields = [(n, v) for n, v in form_fields if n != name]
            form_fields.append((name, value))
        multipart = multipart or draw(st.booleans())
    raw = None
    if method == "POST" and draw(st.integers(0, 5)) == 0:  # a body that is not what it says
        raw = (draw(st.sampled_from(RAW_TYPES)), draw(st.sampled_from(RAW_BODIES)))
    headers = draw(st.lists(st.tuples(st.sampled_from(HEADERS), st.sampled_from(HEADER_VALUES))))
    return {
        "headers": headers,
        "raw": raw,
        "method": method,
        "path_choice": path_choice,
        "query": query,
        "form": form_fields,
        "files": files,
        "multipart": multipart,
        "csrf": draw(st.sampled_from([True, True, True, False])),
        "file_body": draw(st.sampled_from([b"", b"GIF89a", b"\xff\xd8\xff" + b"\x00" * 50, b"x"])),
    }


def body_of(req: dict, token: str | None) -> tuple[bytes, str]:
    if req["raw"]:
        content_type, body = req["raw"]
        if req["csrf"] and token and content_type.endswith("urlencoded"):
            body = f"csrf_token={token}&".encode() + body
        return body, content_type
    fields = list(req["form"])
    if req["csrf"] and token:
        fields.insert(0, ("csrf_token", token.encode()))
    if not req["multipart"]:
        body = "&".join(f"{quote(n)}={enc(v)}" for n, v in fields).encode()
        return body, "application/x-www-form-urlencoded"
    boundary = "fuzzBoundary7MA4YWxkTrZu0gW"
    out = b""
    for name, value in fields:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value + b"\r\n"
    for name in req["files"]:
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        out += req["file_body"] + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


# The test ---------------------------------------------------------------------------------


def signed_in(world, app) -> dict:
    colleague = Api(app)
    r = colleague.post(
        "/api/auth/login", {"email": "colleague@clinic-one.net", "password": PASSWORD}
    )
    assert r.status_code == 200, r.json
    return {
        "anon": world.anon.http,
        "c1": world.c1.http,
        "colleague": colleague.http,
        "p1": world.p1.http,
        "p2": world.p2.http,
    }


def real_tokens(world, app) -> dict:
    """Tokens that are ours, for the routes that take one: this clinic's and the other's,
    used, erased-client and expired ones, beside the junk of PATH_TEXT."""
    secret = app.config["SECRET_KEY"]
    c1, c2 = world.client1["id"], world.client2["id"]
    invites = [world.p1.post(f"/api/clients/{c1}/invites").json["token"]]
    invites.append(world.p2.post(f"/api/clients/{c2}/invites").json["token"])
    calendars = [row[0] for row in sql(app, "SELECT calendar_token FROM clients")]
    reminders = sql(app, "SELECT id, client_id, session_id, expires_at FROM notifications")
    links = [
        checkin_token(
            secret, dict(zip(("id", "client_id", "session_id", "expires_at"), row, strict=True))
        )
        for row in reminders[:2] + reminders[-2:]
    ]
    links.append(
        checkin_token(  # client 1 with clinic 2's session, expired
            secret,
            {
                "id": 1,
                "client_id": c1,
                "session_id": world.session2["id"],
                "expires_at": "2001-01-01T00:00:00+00:00",
            },
        )
    )
    unsubscribe = [unsubscribe_token(secret, i) for i in (c1, c2, 10**17)]
    return {
        "client.redeem": {"token": invites},
        "reminders.calendar_feed": {"token": calendars},
        "checkins.checkin_by_link": {"token": links},
        "reminders.unsubscribe": {"token": unsubscribe},
    }


def csrf_of(http, paths=("/clinic/password", "/settings", "/clinic/login")) -> str | None:
    for path in paths:
        r = http.get(path)
        found = re.search(r'name="csrf_token" value="([^"]+)"', r.get_data(as_text=True))
        if r.status_code == 200 and found:
            return found.group(1)
    return None


def all_forms(app, world, clients) -> dict:
    """Every form on every page any role can GET, by the rule it posts to."""
    adapter = app.url_map.bind("localhost")
    found: dict = {}
    for rule, methods in page_routes(app):
        if "GET" not in methods:
            continue
        for http in clients.values():
            path = fill_path(rule, world, dict.fromkeys(rule.arguments, 0))
            r = http.get(path)
            r.close()
            if r.status_code != 200 or "html" not in (r.content_type or ""):
                continue
            for form in forms_of(r.get_data(as_text=True)):
                action = form["action"].split("?")[0].split("#")[0] or path
                try:
                    target, _ = adapter.match(action, method=form["method"])
                except Exception:  # noqa: BLE001 - a form for another method or site
                    continue
                forms = found.setdefault(target, [])
                if form not in forms:
                    forms.append(form)
    return found


# werkzeug's multipart parser leaves the temporary file of a file part open when the body ends
# before the part does (a 400 all the same): a ResourceWarning at garbage collection, not ours.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <function SpooledTemporaryFile.__del__"
    ":pytest.PytestUnraisableExceptionWarning"
)
def test_no_page_answers_500(world):
    app = world.app
    # Zones at the ends of the clock, where a date near 0001 or 9999 leaves datetime's range.
    sql(
        app,
        "UPDATE clients SET timezone = 'Pacific/Kiritimati' WHERE id = ?",
        (world.client1["id"],),
    )
    sql(
        app,
        "UPDATE clients SET timezone = 'Pacific/Pago_Pago' WHERE id = ?",
        (world.client2["id"],),
    )
    sql(
        app,
        "UPDATE clinics SET timezone = 'Pacific/Kiritimati' WHERE id = ?",
        (world.clinic1["id"],),
    )
    sql(app, "UPDATE clinics SET timezone = 'Etc/GMT+12' WHERE id = ?", (world.clinic2["id"],))
    clients = signed_in(world, app)
    world.fuzz_tokens = real_tokens(world, app)
    tokens = {role: csrf_of(http) for role, http in clients.items()}
    seen = []
    forms = all_forms(app, world, clients)
    # The crawl found the forms: the pages' own, and those that post elsewhere.
    assert {"practitioner.new_client", "treatments.session_form", "review.recovery_action"} <= set(
        forms
    )
    only = os.environ.get("PAGE_FUZZ_ONLY", "")  # to hunt on a few routes: a part of their rule
    for rule, methods in page_routes(app):
        if only not in rule.rule:
            continue
        for role in ROLES:
            http = clients[role]
            check_route(
                world,
                app,
                http,
                tokens[role],
                rule,
                methods,
                forms.get(rule.endpoint, []),
                role,
                seen,
            )
    # It did ask: every route in every role.
    if not only:
        assert len({(r, role) for r, role, _ in seen}) == len(page_routes(app)) * len(ROLES)


def check_route(world, app, http, token, rule, methods, forms, role, seen, then=None):
    @settings(
        max_examples=EXAMPLES,
        derandomize=not SEED,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(req=requests(rule, methods, FormList(forms)))
    def probe(req):
        path = fill_path(rule, world, req["path_choice"])
        query = "&".join(f"{quote(k)}={enc(v)}" for k, v in req["query"])
        kw = {"method": req["method"], "query_string": query, "headers": req["headers"]}
        if req["method"] == "POST":
            kw["data"], kw["content_type"] = body_of(req, token() if callable(token) else token)
        before = snapshot(app, skip=SKIP)
        r = http.open(path, **kw)
        r.close()  # sw.js and the logo are files
        seen.append((rule.rule, role, r.status_code))
        if os.environ.get("FUZZ_DEBUG"):
            print(
                r.status_code,
                req["method"],
                req["csrf"],
                re.findall(r"<p>([^<]*)", r.get_data(as_text=True))[:1],
                req["raw"] and req["raw"][0],
            )
        assert r.status_code < 500, (role, req["method"], path, query, kw.get("data"))
        assert r.status_code in range(200, 500)
        if 400 <= r.status_code < 500:
            after = snapshot(app, skip=SKIP)
            changed = [t for t in before if before[t] != after.get(t)]
            assert not changed, (role, path, r.status_code, changed)
        if then:
            then(r)

    if SEED:
        probe = seed(int(SEED))(probe)
    probe()


SETUP = {
    "clinic_name": "First Clinic",
    "clinic_phone": "+44 20 7946 0002",
    "timezone": "Pacific/Kiritimati",
    "email": "owner@first-clinic.net",
    "name": "Dr Owner",
    "password": PASSWORD,
}


def test_the_first_run_setup_page_under_fuzz(app):
    # An empty installation: /clinic/setup still open (the world above has set it up).
    http = app.test_client()
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == "practitioner.setup")
    page = http.get("/clinic/setup")
    forms = forms_of(page.get_data(as_text=True))
    assert any(n == "password" for f in forms for n, _, _ in f["fields"])
    for form in forms:  # a valid form to start from, so each change is the one thing wrong
        form["fields"] = [(n, SETUP.get(n, v), file) for n, v, file in form["fields"]]
    empty = snapshot(app, skip=())
    done = []

    def unset(r):  # a setup that worked: back to the empty installation for the next example
        if r.status_code == 302 and r.headers["Location"] == "/clinic/clients":
            done.append(r)
            now = snapshot(app, skip=())
            conn = sqlite3.connect(app.config["DATABASE"])
            try:
                conn.execute("PRAGMA foreign_keys = OFF")
                for table, rows in empty.items():
                    if now[table] != rows:
                        conn.execute(f"DELETE FROM {table}")
                        for row in rows:
                            marks = ", ".join("?" * len(row))
                            conn.execute(f"INSERT INTO {table} VALUES ({marks})", row)
                conn.commit()
            finally:
                conn.close()
            http._cookies.clear()  # signed out: the owner it signed in is gone
            token[0] = csrf_of(http, ("/clinic/setup",))

    seen = []
    token = [csrf_of(http, ("/clinic/setup",))]
    check_route(
        None, app, http, lambda: token[0], rule, ["GET", "POST"], forms, "anon", seen, unset
    )
    assert seen
    assert done or EXAMPLES < 10, "no example set the clinic up"


def test_the_two_factor_code_step_under_fuzz(world):
    # A practitioner with two-factor sign-in on, half-way in: password given, code asked.
    from test_two_factor import enrol

    app = world.app
    enrol(world.p1)
    http = app.test_client()
    form = {"csrf_token": csrf_of(http), "email": "one@clinic-one.net", "password": PASSWORD}
    assert (
        http.post("/clinic/login", data=form).headers["Location"].startswith("/clinic/login/code")
    )
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == "twofactor.code")
    forms = forms_of(http.get("/clinic/login/code").get_data(as_text=True))
    assert any(n == "code" for f in forms for n, _, _ in f["fields"])
    seen = []
    check_route(
        world,
        app,
        http,
        csrf_of(http, ("/clinic/login/code",)),
        rule,
        ["GET", "POST"],
        forms,
        "half-way",
        seen,
    )
    assert seen


# What the fuzz found, each pinned --------------------------------------------------------


def test_a_protocol_import_nested_too_deep_is_a_422_naming_steps(world):
    # Was a 500: the page's JSON import let RecursionError out of the parser.
    p1 = world.p1.http
    before = snapshot(world.app, skip=SKIP)
    r = p1.post(
        "/clinic/protocol",
        data={"csrf_token": csrf_of(p1), "steps": "[" * 50000 + "]" * 50000},
    )
    assert r.status_code == 422
    assert "Not valid JSON" in r.get_data(as_text=True)
    assert snapshot(world.app, skip=SKIP) == before


@pytest.mark.parametrize("target", ["//[", "http://[::1", "/a\nb", "/a\r\nSet-Cookie: x=1"])
def test_a_sign_in_with_a_malformed_next_goes_to_the_queue(world, target):
    # Were 500s, after the sign-in had happened: urlsplit raises ValueError on an unclosed
    # IPv6 bracket, and a newline cannot go into a Location header.
    http = world.app.test_client()
    form = {"csrf_token": csrf_of(http), "email": "one@clinic-one.net", "password": PASSWORD}
    r = http.post("/clinic/login", query_string={"next": target}, data=form)
    assert r.status_code == 302
    assert r.headers["Location"] == "/clinic/"


@pytest.mark.parametrize("part", ['form-data; filename="a.jpg"', "form-data"])
@pytest.mark.parametrize("with_token", [False, True])
def test_a_form_part_without_a_name_is_a_400(world, part, with_token):
    # Was a 500 without a token: flask-wtf's CSRF check then looks through every field's name,
    # and a multipart part with no name= is a field named None. With one it was ignored.
    p1 = world.p1.http
    token = f'Content-Disposition: form-data; name="csrf_token"\r\n\r\n{csrf_of(p1)}\r\n--b\r\n'
    body = (
        f"--b\r\n{token if with_token else ''}Content-Disposition: {part}\r\n\r\nx\r\n--b--\r\n"
    ).encode()
    before = snapshot(world.app, skip=SKIP)
    r = p1.post("/clinic/profile", data=body, content_type="multipart/form-data; boundary=b")
    assert r.status_code == 400
    assert "Every field of a form needs a name" in r.get_data(as_text=True)
    assert snapshot(world.app, skip=SKIP) == before


@pytest.mark.parametrize("where", ["language", "field"])
def test_a_protocol_import_with_a_lone_surrogate_key_is_a_422(world, where):
    # Was a 500: JSON may spell a lone surrogate ("\ud800"); as a language or a field name the
    # error's path echoed it, and the page could not be encoded as UTF-8.
    step = {k: v for k, v in world.p1.get("/api/protocol").json["steps"][0].items() if k != "when"}
    step = step | ({"body": {"en": "x", "XX": "y"}} if where == "language" else {"XX": 1})
    text = json.dumps([step]).replace('"XX"', '"\\ud800"')
    p1 = world.p1.http
    before = snapshot(world.app, skip=SKIP)
    r = p1.post("/clinic/protocol", data={"csrf_token": csrf_of(p1), "steps": text})
    assert r.status_code == 422
    assert "\\ud800" in r.get_data(as_text=True)  # shown as it was typed
    assert snapshot(world.app, skip=SKIP) == before


@pytest.mark.parametrize("offset", [" ", "abc", "1,5"])
def test_a_protocol_step_whose_hours_are_not_a_number_is_a_422(world, offset):
    # Was a 500: the editor shows the typed steps again beside the errors, and writing their
    # timing in words ("24 h after") formatted the typed text as a number.
    p1 = world.p1.http
    page = p1.get("/clinic/protocol").get_data(as_text=True)
    form = next(f for f in forms_of(page) if any(n == "offset_hours" for n, _, _ in f["fields"]))
    fields = [(n, v) for n, v, _ in form["fields"]]
    i = next(i for i, (n, _) in enumerate(fields) if n == "offset_hours")
    fields[i] = ("offset_hours", offset)
    before = snapshot(world.app, skip=SKIP)
    r = p1.post("/clinic/protocol", data=MultiDict(fields))
    assert r.status_code == 422
    assert "must be a number" in r.get_data(as_text=True)
    assert snapshot(world.app, skip=SKIP) == before


@pytest.mark.parametrize("back", ["/clinic/a\nb", "/clinic/a\r\nSet-Cookie: x=1"])
def test_a_flag_action_whose_back_has_a_newline_goes_to_the_queue(world, back):
    # Was a 500 (after the flag was acknowledged): a newline cannot go in a Location header.
    p1 = world.p1.http
    form = {"csrf_token": csrf_of(p1), "back": back, "flag_id": str(world.flag1["id"])}
    r = p1.post("/clinic/recoveries/acknowledge", data=form)
    assert (r.status_code, r.headers["Location"]) == (302, "/clinic/")
    r = p1.post(f"/clinic/flags/{world.flag1['id']}/called", data=form)
    assert (r.status_code, r.headers["Location"]) == (302, "/clinic/")
