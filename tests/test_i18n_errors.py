"""A client's API errors in their language (issue 15): the same codes and field names, the
message and each field's text translated where the error becomes JSON (companion/errors.py)."""

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
