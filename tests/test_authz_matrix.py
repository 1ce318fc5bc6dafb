"""Authorization matrix: every route x {anonymous, client A, client B, owner 1, practitioner 1,
owner 2}.

Client A, owner P1 and practitioner PR (not an owner) belong to clinic 1, which owns every
object the paths name; client B and owner P2 belong to clinic 2. The expected status of each
cell is written down here. Objects a call uses up (a spare session or client, a colleague) are
made fresh for each call.
"""

import io
import itertools

from conftest import PASSWORD, Api, checkin_body, sql
from PIL import Image

from testkit.push_receiver import PushReceiver

ROLES = ("anon", "A", "B", "P1", "PR", "P2")
FRESH = (
    "spare_session",
    "spare_client",
    "colleague",
    "open_flag",
    "flagged_session",
    "spare_device",
)
NEW_PASSWORD = "tulip garden mornings"
_n = itertools.count()


def unique_email():
    return f"colleague{next(_n)}@clinic-one.net"


def jpeg(colour="red"):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, "JPEG")
    return buf.getvalue()


# (method, path, body, {role: status}); "{...}" names are filled from the objects below.
# A callable body is made fresh per call. Rows run in order, P1 last on each row.
J = "json"
TABLE = [
    ("GET", "/api/openapi.json", None, dict(anon=200, A=200, B=200, P1=200, P2=200, PR=200)),
    (
        "GET",
        "/api/push/vapid-public-key",
        None,
        dict(anon=200, A=200, B=200, P1=200, P2=200, PR=200),
    ),
    ("POST", "/api/setup", lambda o: {}, dict(anon=409, A=409, B=409, P1=409, P2=409, PR=409)),
    (
        "POST",
        "/api/invites/{bad_token}/redeem",
        None,
        dict(anon=404, A=404, B=404, P1=404, P2=404, PR=404),
    ),
    (
        "POST",
        "/api/checkin-links/{bad_token}",
        lambda o: checkin_body(),
        dict(anon=404, A=404, B=404, P1=404, P2=404, PR=404),
    ),
    ("GET", "/api/me", None, dict(anon=401, A=200, B=200, P1=200, P2=200, PR=200)),
    ("PATCH", "/api/me", lambda o: {}, dict(anon=401, A=200, B=200, P1=200, P2=200, PR=200)),
    ("GET", "/api/practitioners", None, dict(anon=401, A=403, B=403, P1=200, P2=200, PR=200)),
    (
        "POST",
        "/api/practitioners",
        lambda o: {
            "email": unique_email(),
            "name": "Colleague",
            "password": "long enough password",
        },
        dict(anon=401, A=403, B=403, P1=201, P2=201, PR=403),
    ),
    (
        "POST",
        "/api/practitioners/{colleague}/disable",
        None,
        dict(anon=401, A=403, B=403, P1=200, P2=404, PR=403),
    ),
    (
        "POST",
        "/api/practitioners/{colleague}/enable",
        None,
        dict(anon=401, A=403, B=403, P1=200, P2=404, PR=403),
    ),
    (
        "PUT",
        "/api/practitioners/{colleague}/role",
        lambda o: {"role": "owner"},
        dict(anon=401, A=403, B=403, P1=200, P2=404, PR=403),
    ),
    # Two-factor sign-in (before the password row: these rows use the first password).
    ("GET", "/api/auth/two-factor", None, dict(anon=401, A=403, B=403, P1=200, P2=200, PR=200)),
    (
        "POST",
        "/api/auth/two-factor/setup",
        None,
        dict(anon=401, A=403, B=403, P1=200, P2=200, PR=200),
    ),
    (
        "POST",
        "/api/auth/two-factor/confirm",
        lambda o: {"code": "not a code"},
        dict(anon=401, A=403, B=403, P1=422, P2=422, PR=422),
    ),
    (
        "POST",
        "/api/auth/two-factor/recovery-codes",
        lambda o: {"password": PASSWORD},
        dict(anon=401, A=403, B=403, P1=409, P2=409, PR=409),
    ),
    (
        "POST",
        "/api/auth/two-factor/disable",
        lambda o: {"password": PASSWORD},
        dict(anon=401, A=403, B=403, P1=204, P2=204, PR=204),
    ),
    ("GET", "/api/clinic/two-factor", None, dict(anon=401, A=403, B=403, P1=200, P2=200, PR=200)),
    (
        "PUT",
        "/api/clinic/two-factor",
        lambda o: {"required": False},
        dict(anon=401, A=403, B=403, P1=200, P2=200, PR=403),
    ),
    (
        "POST",
        "/api/practitioners/{colleague}/two-factor/reset",
        None,
        dict(anon=401, A=403, B=403, P1=200, P2=404, PR=403),
    ),
    # Clients' phones.
    (
        "GET",
        "/api/clients/{client}/devices",
        None,
        dict(anon=401, A=403, B=403, P1=200, P2=404, PR=200),
    ),
    (
        "DELETE",
        "/api/clients/{client}/devices/{spare_device}",
        None,
        dict(anon=401, A=403, B=403, P1=204, P2=404, PR=204),
    ),
    (
        "DELETE",
        "/api/clients/{spare_client}/devices",
        None,
        dict(anon=401, A=403, B=403, P1=200, P2=404, PR=200),
    ),
    (
        "POST",
        "/api/auth/password",
        lambda o: {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        dict(anon=401, A=403, B=403, P1=204, P2=204, PR=204),
    ),
    ("GET", "/api/clients", None, dict(anon=401, A=403, B=403, P1=200, P2=200, PR=200)),
    (
        "POST",
        "/api/clients",
        lambda o: {"name": "New client"},
        dict(anon=401, A=403, B=403, P1=201, P2=201, PR=201),
    ),
    ("GET", "/api/clients/{client}", None, dict(anon=401, A=403, B=403, P1=200, P2=404, PR=200)),
    (
        "PATCH",
        "/api/clients/{client}",
        lambda o: {"phone": "+44 7700 900000"},
        dict(anon=401, A=403, B=403, P1=200, P2=404, PR=200),
    ),
    (
        "POST",
        "/api/clients/{client}/invites",
        None,
        dict(anon=401, A=403, B=403, P1=201, P2=404, PR=201),
    ),
    (
        "GET",
        "/api/clients/{client}/sessions",
        None,
        dict(anon=401, A=403, B=403, P1=200, P2=404, PR=200),
    ),
    (
        "POST",
        "/api/clients/{client}/sessions",
        lambda o: o["session_body"],
        dict(anon=401, A=403, B=403, P1=201, P2=404, PR=201),
    ),
    ("GET", "/api/sessions/{session}", None, dict(anon=401, A=403, B=403, P1=200, P2=404, PR=200)),
    (
        "PATCH",
        "/api/sessions/{session}",
        lambda o: {"notes": "edited"},
        dict(anon=401, A=403, B=403, P1=200, P2=404, PR=200),
    ),
    (
        "DELETE",
        "/api/sessions/{spare_session}",
        None,
        dict(anon=401, A=403, B=403, P1=204, P2=404, PR=204),
    ),
    ("GET", "/api/clinic", None, dict(anon=401, A=200, B=200, P1=200, P2=200, PR=200)),
    (
        "PATCH",
        "/api/clinic",
        lambda o: {"opening_hours": "Mon-Fri 9:00-18:00"},
        dict(anon=401, A=403, B=403, P1=200, P2=200, PR=403),
    ),
    ("PUT", "/api/clinic/logo", "photo", dict(anon=401, A=403, B=403, P1=200, P2=200, PR=403)),
    ("DELETE", "/api/clinic/logo", None, dict(anon=401, A=403, B=403, P1=200, P2=200, PR=403)),
    ("GET", "/api/protocol", None, dict(anon=401, A=403, B=403, P1=200, P2=200, PR=200)),
    (
        "PUT",
        "/api/protocol",
        lambda o: {"steps": o["steps"]},
        dict(anon=401, A=403, B=403, P1=200, P2=200, PR=403),
    ),
    (
        "POST",
        "/api/protocol/preview",
        lambda o: {"steps": o["steps"], "timezone": "America/New_York"},
        dict(anon=401, A=403, B=403, P1=200, P2=200, PR=200),
    ),
    ("GET", "/api/push/subscriptions", None, dict(anon=401, A=200, B=200, P1=200, P2=200, PR=200)),
    (
        "POST",
        "/api/push/subscriptions",
        lambda o: o["rx"].new_subscription().to_json(),
        dict(anon=401, A=201, B=201, P1=201, P2=201, PR=201),
    ),
    (
        "DELETE",
        "/api/push/subscriptions",
        lambda o: {"endpoint": o["p1_endpoint"]},
        dict(anon=401, A=404, B=404, P1=204, P2=404, PR=404),
    ),
    ("POST", "/api/calendar/reset", None, dict(anon=401, A=200, B=200, P1=403, P2=403, PR=403)),
    (
        "POST",
        "/api/clients/{client}/calendar/reset",
        None,
        dict(anon=401, A=403, B=403, P1=200, P2=404, PR=200),
    ),
    ("GET", "/api/aftercare", None, dict(anon=401, A=200, B=200, P1=403, P2=403, PR=403)),
    (
        "POST",
        "/api/checkins",
        lambda o: checkin_body(),
        dict(anon=401, A=201, B=201, P1=403, P2=403, PR=403),
    ),
    (
        "GET",
        "/api/checkins?client_id={client}",
        None,
        dict(anon=401, A=200, B=200, P1=200, P2=404, PR=200),
    ),
    (
        "POST",
        "/api/checkins/{checkin}/photos",
        "photo",
        dict(anon=401, A=201, B=404, P1=403, P2=403, PR=403),
    ),
    ("GET", "/api/photos/{photo}", None, dict(anon=401, A=200, B=404, P1=200, P2=404, PR=200)),
    ("GET", "/api/flags", None, dict(anon=401, A=403, B=403, P1=200, P2=200, PR=200)),
    ("GET", "/api/flags/{flag}", None, dict(anon=401, A=403, B=403, P1=200, P2=404, PR=200)),
    (
        "POST",
        "/api/flags/{flag}/acknowledge",
        None,
        dict(anon=401, A=403, B=403, P1=200, P2=404, PR=200),
    ),
    (
        "POST",
        "/api/flags/{flag}/called",
        None,
        dict(anon=401, A=403, B=403, P1=200, P2=404, PR=200),
    ),
    (
        "POST",
        "/api/flags/{open_flag}/resolve",
        lambda o: {"note": "ok"},
        dict(anon=401, A=403, B=403, P1=200, P2=404, PR=200),
    ),
    ("GET", "/api/queue", None, dict(anon=401, A=403, B=403, P1=200, P2=200, PR=200)),
    ("GET", "/api/queue/summary", None, dict(anon=401, A=403, B=403, P1=200, P2=200, PR=200)),
    (
        "POST",
        "/api/queue/{flagged_session}/acknowledge",
        None,
        dict(anon=401, A=403, B=403, P1=200, P2=404, PR=200),
    ),
    (
        "POST",
        "/api/queue/{flagged_session}/called",
        None,
        dict(anon=401, A=403, B=403, P1=200, P2=404, PR=200),
    ),
    (
        "POST",
        "/api/queue/{flagged_session}/resolve",
        lambda o: {"note": "ok"},
        dict(anon=401, A=403, B=403, P1=200, P2=404, PR=200),
    ),
    (
        "GET",
        "/api/clients/{client}/export",
        None,
        dict(anon=401, A=403, B=403, P1=200, P2=404, PR=200),
    ),
    (
        "GET",
        "/api/clients/{client}/export?format=csv",
        None,
        dict(anon=401, A=403, B=403, P1=200, P2=404, PR=200),
    ),
    (
        "GET",
        "/api/exports/checkins.csv",
        None,
        dict(anon=401, A=403, B=403, P1=200, P2=200, PR=200),
    ),
    ("GET", "/api/exports/flags.csv", None, dict(anon=401, A=403, B=403, P1=200, P2=200, PR=200)),
    ("GET", "/api/audit", None, dict(anon=401, A=403, B=403, P1=200, P2=200, PR=200)),
    (
        "DELETE",
        "/api/clients/{spare_client}",
        None,
        dict(anon=401, A=403, B=403, P1=204, P2=404, PR=204),
    ),
    # Pages: anonymous visitors are sent to sign in; the wrong role is refused.
    ("GET", "/", None, dict(anon=302, A=200, B=200, P1=302, P2=302, PR=302)),
    ("GET", "/checkin", None, dict(anon=302, A=200, B=200, P1=403, P2=403, PR=403)),
    ("GET", "/settings", None, dict(anon=302, A=200, B=200, P1=403, P2=403, PR=403)),
    ("GET", "/clinic/", None, dict(anon=302, A=403, B=403, P1=200, P2=200, PR=200)),
    ("GET", "/clinic/clients/{client}", None, dict(anon=302, A=403, B=403, P1=200, P2=404, PR=200)),
    (
        "GET",
        "/clinic/sessions/{session}/edit",
        None,
        dict(anon=302, A=403, B=403, P1=200, P2=404, PR=200),
    ),
    (
        "GET",
        "/clinic/sessions/{session}/reminders",
        None,
        dict(anon=302, A=403, B=403, P1=200, P2=404, PR=200),
    ),
    (
        "GET",
        "/clinic/clients/{client}/erase",
        None,
        dict(anon=302, A=403, B=403, P1=200, P2=404, PR=200),
    ),
    ("GET", "/clinic/team", None, dict(anon=302, A=403, B=403, P1=200, P2=200, PR=200)),
    ("GET", "/clinic/protocol", None, dict(anon=302, A=403, B=403, P1=200, P2=200, PR=200)),
    ("GET", "/clinic/profile", None, dict(anon=302, A=403, B=403, P1=200, P2=200, PR=200)),
    ("GET", "/clinic/password", None, dict(anon=302, A=403, B=403, P1=200, P2=200, PR=200)),
    ("GET", "/clinic/exports", None, dict(anon=302, A=403, B=403, P1=200, P2=200, PR=200)),
    ("GET", "/clinic/audit", None, dict(anon=302, A=403, B=403, P1=200, P2=200, PR=200)),
    ("GET", "/clinic/two-factor", None, dict(anon=302, A=403, B=403, P1=200, P2=200, PR=200)),
]


def new_phone(w) -> str:
    """Sign one more phone in as client A; return its device id."""
    token = w.p1.post(f"/api/clients/{w.client1['id']}/invites").json["token"]
    assert Api(w.app).post(f"/api/invites/{token}/redeem").status_code == 200
    [(device_id,)] = sql(
        w.app,
        "SELECT device_id FROM auth_sessions WHERE user_kind = 'client' ORDER BY rowid DESC LIMIT 1",
    )
    return device_id


def test_every_documented_route_is_in_the_matrix(app):
    import re

    spec = app.test_client().get("/api/openapi.json").json["paths"]
    covered = {(m.lower(), re.sub(r"\?.*", "", p)) for m, p, _, _ in TABLE}
    named = {(m, re.sub(r"\{[a-z_]+\}", "{}", p)) for m, p in covered}
    missing = [
        (m, p)
        for p, ops in spec.items()
        for m in ops
        if (m, re.sub(r"\{[a-z_]+\}", "{}", p)) not in named
        and p not in ("/api/auth/login", "/api/auth/logout", "/api/auth/logout-all")
    ]
    assert missing == []


def test_authorization_matrix(world):
    w = world
    practitioner = w.p1.post(
        "/api/practitioners", {"email": unique_email(), "name": "Dr PR", "password": PASSWORD}
    ).json
    assert practitioner["role"] == "practitioner"
    pr = Api(w.app)
    login = {"email": practitioner["email"], "password": PASSWORD}
    assert pr.post("/api/auth/login", login).status_code == 200
    assert w.p1.get("/api/me").json["practitioner"]["role"] == "owner"
    apis = {"anon": w.anon, "A": w.c1, "B": w.c2, "P1": w.p1, "PR": pr, "P2": w.p2}
    with PushReceiver() as rx:
        p1_sub = rx.new_subscription().to_json()
        assert w.p1.post("/api/push/subscriptions", p1_sub).status_code == 201
        checkin = w.c1.post("/api/checkins", checkin_body(warning_signs={"pus": True})).json
        photo = w.c1.post(  # another photo than the table's (the same one again answers 200)
            f"/api/checkins/{checkin['id']}/photos",
            data=jpeg("blue"),
            headers={"Content-Type": "image/jpeg"},
        ).json
        objects = {
            "client": w.client1["id"],
            "session": w.session1["id"],
            "checkin": checkin["id"],
            "photo": photo["id"],
            "flag": w.p1.get("/api/flags").json["flags"][0]["id"],
            # A check-in with a warning sign opens the flag again once it is resolved.
            "open_flag": lambda: (
                w.c1.post("/api/checkins", checkin_body(warning_signs={"pus": True})).json,
                w.p1.get("/api/flags").json["flags"][0]["id"],
            )[1],
            # A check-in with a warning sign gives the session an active flag to resolve.
            "flagged_session": lambda: (
                w.c1.post(
                    "/api/checkins",
                    checkin_body(session_id=w.session1["id"], warning_signs={"pus": True}),
                ).json,
                w.session1["id"],
            )[1],
            "spare_session": lambda: w.new_session(w.p1, w.client1["id"])["id"],
            "spare_client": lambda: w.new_client(w.p1, "Spare")["id"],
            "spare_device": lambda: new_phone(w),
            "colleague": lambda: w.p1.post(
                "/api/practitioners",
                {"email": unique_email(), "name": "C", "password": "long enough password"},
            ).json["id"],
            "session_body": {
                "performed_at": "2026-01-10T10:00:00+00:00",
                "areas": ["face"],
                "needle_depth_mm": 1.0,
                "device": "pen",
            },
            "steps": w.p1.get("/api/protocol").json["steps"],
            "p1_endpoint": p1_sub["endpoint"],
            "rx": rx,
            "bad_token": "not-a-real-token",
        }
        for step in objects["steps"]:
            step.pop("when", None)
        wrong = []
        for method, path, body, expected in TABLE:
            for role in ("anon", "A", "B", "P2", "PR", "P1"):
                fresh = {k: objects[k]() for k in FRESH if "{" + k + "}" in path}
                url = path.format(
                    **{k: v for k, v in objects.items() if isinstance(v, int | str)}, **fresh
                )
                api = apis[role]
                if body == "photo":
                    r = api._call(method, url, data=jpeg(), headers={"Content-Type": "image/jpeg"})
                else:
                    payload = body(objects) if callable(body) else None
                    r = api._call(method, url, json=payload)
                r.close()  # a served photo holds its file open until the response is closed
                if r.status_code != expected[role]:
                    wrong.append(
                        f"{method} {path} as {role}: {r.status_code}, expected {expected[role]}"
                    )
                assert r.status_code < 500
    assert wrong == []
