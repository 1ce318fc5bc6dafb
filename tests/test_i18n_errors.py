"""A client's API errors in their language (issue 15): the same codes and field names, the
message and each field's text translated where the error becomes JSON (companion/errors.py)."""

import re

from conftest import checkin_body
from test_isolation import template_world_fixture, world_fixture  # noqa: F401  (fixtures)

from companion.errors import N_, shown

BAD_SETTINGS = {
    "timezone": "Mars/Olympus",
    "quiet_hours": {"start": "25:00", "end": "08:00"},
    "discreet": "yes",
    "channels": ["sms"],
    "colour": "red",
}
BAD_CHECKIN = {"redness": 7, "pain": "2", "warning_signs": {"pus": 1, "horns": True}}


def error(r) -> dict:
    assert r.status_code == 422, r.json
    return r.json["error"]


def test_a_spanish_clients_settings_errors_are_spanish(world):
    english = error(world.c1.patch("/api/me", BAD_SETTINGS))
    assert world.c1.patch("/api/me", {"language": "es"}).status_code == 200
    spanish = error(world.c1.patch("/api/me", BAD_SETTINGS))
    assert spanish["code"] == english["code"] == "invalid"
    assert spanish["fields"].keys() == english["fields"].keys()
    assert spanish["message"] == "Algunos campos no son válidos."
    assert english["message"] == "Some fields are not valid."
    assert spanish["fields"] == {
        "timezone": "Zona horaria desconocida; usa un nombre IANA, como Europe/Madrid.",
        "quiet_hours.start": "Usa el formato de 24 horas HH:MM, p. ej. 21:00.",
        "discreet": "Debe ser true o false.",
        "channels": 'Una lista con "push" y "email", o null para lo predeterminado.',
        "colour": "Campo desconocido.",
    }
    assert english["fields"]["discreet"] == "Must be true or false."


def test_a_spanish_clients_checkin_errors_are_spanish_with_values_filled_in(world):
    english = error(world.c1.post("/api/checkins", checkin_body(**BAD_CHECKIN)))
    world.c1.patch("/api/me", {"language": "es"})
    spanish = error(world.c1.post("/api/checkins", checkin_body(**BAD_CHECKIN)))
    assert spanish["fields"].keys() == english["fields"].keys()
    assert english["fields"]["redness"] == "Must be between 0 and 4."
    assert spanish["fields"]["redness"] == "Debe estar entre 0 y 4."
    assert spanish["fields"]["pain"] == "Debe ser un número entero."
    assert english["fields"]["warning_signs"].startswith("Unknown keys: horns; allowed: ")
    assert spanish["fields"]["warning_signs"].startswith("Claves desconocidas: horns; se admiten: ")
    missing = error(world.c1.post("/api/checkins", {"id": "nope"}))
    assert missing["fields"]["taken_at"] == "Este campo es obligatorio."
    assert missing["fields"]["id"].startswith("Debe ser un UUID creado en el teléfono")


def test_a_spanish_clients_photo_refusal_is_spanish(world):
    world.c1.patch("/api/me", {"language": "es"})
    made = world.c1.post("/api/checkins", checkin_body())
    assert made.status_code == 201, made.json
    r = world.c1.post(
        f"/api/checkins/{made.json['id']}/photos",
        data=b"not a photo at all",
        headers={"Content-Type": "image/jpeg"},
    )
    assert r.status_code == 422, r.json
    assert r.json["error"]["code"] == "not_an_image"
    assert r.json["error"]["message"].startswith("No es una foto que podamos leer")
    assert r.json["error"]["fields"] == {"photo": "Imagen no admitida o dañada."}


def test_a_practitioner_stays_english_whatever_the_browser(world):
    r = world.p1.post(
        "/api/clients",
        {"name": "", "email": "nope", "language": "fr"},
        headers={"Accept-Language": "es"},
    )
    e = error(r)
    assert e["message"] == "Some fields are not valid."
    assert e["fields"]["name"] == "This field is required."
    assert e["fields"]["email"] == "Not a valid email address."
    assert e["fields"]["language"] == "Must be one of: en, es."


def test_a_marked_message_is_its_english_text_and_is_english_outside_a_request():
    text = N_("At most %(max)s characters.", max=200)
    assert text == "At most 200 characters." and text.msgid == "At most %(max)s characters."
    assert shown(text) == "At most 200 characters."
    assert shown("100% sure") == "100% sure"  # an unmarked text is never %-formatted


def test_a_spanish_clients_not_found_names_the_record_in_spanish(world):
    # Another client's check-in is no such check-in; the record's name is translated too.
    theirs = world.c2.post("/api/checkins", checkin_body())
    assert theirs.status_code == 201, theirs.json
    url = f"/api/checkins/{theirs.json['id']}/photos"
    photo = {"data": b"not a photo at all", "headers": {"Content-Type": "image/jpeg"}}
    english = world.c1.post(url, **photo)
    assert english.status_code == 404
    assert english.json["error"]["message"] == "No such check-in."
    world.c1.patch("/api/me", {"language": "es"})
    spanish = world.c1.post(url, **photo)
    assert spanish.status_code == 404
    assert spanish.json["error"] == {
        **english.json["error"],
        "message": "No se ha encontrado: registro.",
    }


# What a client's phone meets around reminders and its sign-in: the push subscription's
# refusals, the edge's (body type, JSON, origin, another role's route, no such address) and
# the settings form's field errors. Each is English for an English client, Spanish for theirs.
PUSH_REFUSALS = [
    (
        "post",
        "/api/push/subscriptions",
        {"endpoint": "ftp://push.example.com/a", "keys": {"p256dh": "AAAA", "auth": "AAAA"}},
        {"endpoint": "endpoint must be an https URL"},
        {
            "endpoint": "el endpoint debe ser una URL https",
            "keys.p256dh": "keys.p256dh debe ser un punto P-256 sin comprimir de 65 bytes",
            "keys.auth": "keys.auth debe descodificarse en exactamente 16 bytes",
        },
    ),
    ("post", "/api/push/subscriptions", [1], {}, {"subscription": "debe ser un objeto JSON"}),
    (
        "delete",
        "/api/push/subscriptions",
        {},
        {},
        {"endpoint": "Indica el endpoint de la suscripción."},
    ),
]


def test_a_spanish_clients_push_subscription_refusals_are_spanish(world):
    english = [
        getattr(world.c1, m)(path, data).json["error"] for m, path, data, *_ in PUSH_REFUSALS
    ]
    world.c1.patch("/api/me", {"language": "es"})
    for (method, path, data, english_fields, spanish_fields), was in zip(
        PUSH_REFUSALS, english, strict=True
    ):
        r = getattr(world.c1, method)(path, data)
        assert r.status_code == 422, r.json
        e = r.json["error"]
        assert e["code"] == was["code"] and e.keys() == was.keys()
        assert e["message"] == "Algunos campos no son válidos."
        assert e["fields"].keys() == was["fields"].keys()
        assert spanish_fields.items() <= e["fields"].items(), e["fields"]
        assert english_fields.items() <= was["fields"].items(), was["fields"]
    gone = world.c1.delete("/api/push/subscriptions", {"endpoint": "https://push.example.com/x"})
    assert gone.status_code == 404
    assert gone.json["error"]["message"] == "No se ha encontrado: suscripción."


def test_a_spanish_clients_refusals_at_the_edge_are_spanish(world):
    json_type = {"Content-Type": "application/json"}
    cases = [
        # (call, status, English (unchanged: werkzeug's own for its 404), Spanish)
        (
            lambda c: c.http.patch("/api/me", data="x", headers={"Content-Type": "text/plain"}),
            415,
            "Send the body as application/json.",
            "Envía el cuerpo como application/json.",
        ),
        (
            lambda c: c.http.patch("/api/me", data="{", headers=json_type),
            400,
            "The body is not valid JSON.",
            "El cuerpo no es JSON válido.",
        ),
        (
            lambda c: c.patch("/api/me", {}, headers={"Origin": "https://evil.example"}),
            403,
            "Cross-origin requests are not allowed.",
            "No se admiten solicitudes desde otro sitio.",
        ),
        (
            lambda c: c.get("/api/clients"),
            403,
            "This is not available to your account.",
            "Esto no está disponible para tu cuenta.",
        ),
        (
            lambda c: c.get("/api/no-such-route"),
            404,
            "The requested URL was not found on the server. If you entered the URL manually"
            " please check your spelling and try again.",
            "No hay nada en esta dirección.",
        ),
    ]
    for language in ("en", "es"):
        world.c1.patch("/api/me", {"language": language})
        for call, status, english, spanish in cases:
            r = call(world.c1)
            assert r.status_code == status, r.json
            assert r.json["error"]["message"] == (spanish if language == "es" else english)
    page = world.c1.get("/clinic/").get_data(as_text=True)  # a practitioner's page
    assert "Esto no está disponible para tu cuenta." in page
    # Signed out, the phone's language is the browser's.
    for language, words in (("es", "Primero tienes que conectarte."), ("en", "Sign in first.")):
        r = world.anon.post("/api/checkins", checkin_body(), headers={"Accept-Language": language})
        assert r.status_code == 401 and r.json["error"]["message"] == words


def test_a_spanish_clients_settings_form_errors_are_spanish(world):
    world.c1.patch("/api/me", {"language": "es"})
    page = world.c1.get("/settings").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = {"csrf_token": token, "timezone": "Mars/Olympus"}
    form |= {"quiet_start": "25:00", "quiet_end": "08:00"}
    refused = world.c1.http.post("/settings", data=form).get_data(as_text=True)
    errors = re.findall(r'class="field-error"[^>]*>([^<]*)<', refused)
    assert "Zona horaria desconocida; usa un nombre IANA, como Europe/Madrid." in errors, errors
    assert "Usa el formato de 24 horas HH:MM, p. ej. 21:00." in errors, errors
