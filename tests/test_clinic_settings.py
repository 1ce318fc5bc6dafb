"""The clinic's own face (issue 15): settings read by everyone of the clinic, changed by owners,
checked (contrast, links, phone), a logo re-encoded without metadata, shown to clients."""

import io
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from conftest import PASSWORD, Api, checkin_body, sql
from PIL import Image

from companion.admin.clinic import contrast_with_white
from companion.db import iso
from companion.reminders import links


def image_bytes(fmt="PNG", size=(1200, 600), color=(200, 30, 30, 255), exif=False):
    img = Image.new("RGBA" if fmt == "PNG" else "RGB", size, color[: 4 if fmt == "PNG" else 3])
    buf = io.BytesIO()
    if exif:
        ex = Image.Exif()
        ex[0x010F] = "SecretCam"  # Make
        img.save(buf, fmt, exif=ex.tobytes())
    else:
        img.save(buf, fmt)
    return buf.getvalue()


def colleague(world):
    body = {"email": "pr@clinic-one.net", "name": "Dr PR", "password": PASSWORD}
    assert world.p1.post("/api/practitioners", body).status_code == 201
    api = Api(world.app)
    r = api.post("/api/auth/login", {"email": body["email"], "password": PASSWORD})
    assert r.status_code == 200
    return api


def test_everyone_of_the_clinic_reads_it_and_nobody_else(world):
    for api in (world.p1, world.c1):
        r = api.get("/api/clinic")
        assert r.status_code == 200
        assert r.json["name"] == "Clinic One"
        assert r.json["display_name"] == "Clinic One"  # no display name yet: the name
        assert r.json["logo_url"] is None
    assert world.c2.get("/api/clinic").json["name"] == "Clinic Two"
    assert world.anon.get("/api/clinic").status_code == 401


def test_an_owner_changes_it_and_clients_see_it(world):
    body = {
        "display_name": "  Glow Skin Studio ",
        "phone": "+44 20 7946 0000",
        "address": "1 High Street\nLondon N1 1AA",
        "booking_url": "https://glow.example/book",
        "accent_color": "#5B21B6",
        "opening_hours": "Mon–Fri 9:00–18:00\nSat 10:00–14:00",
    }
    r = world.p1.patch("/api/clinic", body)
    assert r.status_code == 200, r.json
    assert r.json["display_name"] == "Glow Skin Studio"
    assert r.json["accent_color"] == "#5b21b6"
    seen = world.c1.get("/api/clinic").json
    assert seen == r.json
    # null clears; the display name falls back to the registered name
    r = world.p1.patch("/api/clinic", {"display_name": None, "booking_url": ""})
    assert r.json["display_name"] == "Clinic One" and r.json["booking_url"] is None
    assert r.json["phone"] == "+44 20 7946 0000"  # absent: unchanged
    assert sql(world.app, "SELECT detail FROM audit_log WHERE action = 'clinic_changed'")


def test_only_owners_change_it(world):
    pr = colleague(world)
    for api in (pr, world.c1):
        assert api.patch("/api/clinic", {"display_name": "Mine"}).status_code == 403
    assert world.anon.patch("/api/clinic", {"display_name": "Mine"}).status_code == 401
    world.p2.patch("/api/clinic", {"display_name": "Two's"})
    assert world.c1.get("/api/clinic").json["display_name"] == "Clinic One"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("accent_color", "#ffff00", "contrast"),  # yellow under white text: 1.1:1
        ("accent_color", "#14b8a6", "contrast"),  # teal-500: 2.5:1
        ("accent_color", "teal", "#rrggbb"),
        ("accent_color", "#12345", "#rrggbb"),
        ("accent_color", 12, "#rrggbb"),
        ("booking_url", "javascript:alert(1)", "https:// or http://"),
        ("booking_url", "glow.example/book", "https:// or http://"),
        ("booking_url", "https://", "https:// or http://"),
        ("booking_url", "ftp://glow.example/book", "https:// or http://"),
        ("booking_url", "https://x.example/" + "a" * 500, "500"),
        ("phone", "call us", "phone"),
        ("display_name", "x" * 101, "100"),
        ("display_name", 5, "text"),
        ("address", "x" * 301, "300"),
        ("opening_hours", "x" * 501, "500"),
        ("opening_hours", "a\x00b", "NUL"),
        ("emergency_number", "1", "digits only"),
        ("emergency_number", "+44 999", "digits only"),
        ("emergency_number", "call 911", "digits only"),
        ("emergency_number", "1234567", "6"),
        ("emergency_number", 112, "text"),
        ("name", "renamed", "Unknown"),
    ],
)
def test_bad_values_are_422_with_the_field_named(world, field, value, message):
    r = world.p1.patch("/api/clinic", {field: value})
    assert r.status_code == 422, r.json
    fields = r.json["error"]["fields"]
    assert field in fields, fields
    assert message.lower() in fields[field].lower()


def test_a_booking_link_may_be_http_as_its_error_says(world):
    # The rule and its message agree: https:// or http:// (a clinic's own booking page may
    # still be plain http; the client only opens it).
    for url in ("https://glow.example/book", "http://glow.example/book"):
        r = world.p1.patch("/api/clinic", {"booking_url": url})
        assert r.status_code == 200, r.json
        assert r.json["booking_url"] == url


def test_the_contrast_rule_is_wcag():
    assert contrast_with_white("#000000") == pytest.approx(21.0)
    assert contrast_with_white("#ffffff") == pytest.approx(1.0)
    assert contrast_with_white("#767676") == pytest.approx(4.54, abs=0.01)  # the AA edge grey
    assert contrast_with_white("#777777") < 4.5


def test_a_borderline_colour_is_accepted_and_served_as_a_stylesheet(world):
    r = world.p1.patch("/api/clinic", {"accent_color": "#767676"})
    assert r.status_code == 200
    page = world.c1.get("/").get_data(as_text=True)
    href = re.search(r'href="(/clinic/theme/767676\.css)"', page).group(1)
    css = world.anon.get(href)
    assert css.status_code == 200 and css.mimetype == "text/css"
    assert "--accent: #767676" in css.get_data(as_text=True)
    assert world.anon.get("/clinic/theme/ffff00.css").status_code == 404


def test_the_logo_is_re_encoded_small_and_without_metadata(world):
    data = image_bytes("JPEG", (2400, 1200), exif=True)
    assert b"SecretCam" in data
    r = world.p1.put("/api/clinic/logo", data=data, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200, r.json
    url = r.json["logo_url"]
    assert url.startswith("/clinic/logo/")
    served = world.anon.get(url)  # public, like the sign on the door: shown before sign-in
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    assert "immutable" in served.headers["Cache-Control"]
    img = Image.open(io.BytesIO(served.data))
    assert max(img.size) == 512 and img.size == (512, 256)
    assert b"SecretCam" not in served.data and not img.getexif()
    assert world.c1.get("/api/clinic").json["logo_url"] == url
    # A new logo gets a new address; the old one is gone.
    r = world.p1.put("/api/clinic/logo", data=image_bytes(), headers={"Content-Type": "image/png"})
    assert r.json["logo_url"] != url
    assert world.anon.get(url).status_code == 404
    r = world.p1.delete("/api/clinic/logo")
    assert r.status_code == 200 and r.json["logo_url"] is None


def test_bad_logos_are_refused_with_the_field_named(world):
    h = {"Content-Type": "image/png"}
    r = world.p1.put("/api/clinic/logo", data=b"not an image at all", headers=h)
    assert r.status_code == 422 and "logo" in r.json["error"]["fields"]
    r = world.p1.put("/api/clinic/logo", data=b"x" * (5 * 1024 * 1024 + 1), headers=h)
    assert r.status_code == 413
    r = world.p1.put("/api/clinic/logo", data=b"{}", headers={"Content-Type": "text/plain"})
    # A form's type is refused before the route; the answer still asks for an image, not JSON.
    assert r.status_code == 415 and "image/jpeg" in r.json["error"]["message"]
    checkin = world.c1.post("/api/checkins", checkin_body()).json
    photo = world.c1.post(
        f"/api/checkins/{checkin['id']}/photos", data=b"x", headers={"Content-Type": "text/plain"}
    )
    assert photo.status_code == 415 and "image/jpeg" in photo.json["error"]["message"]
    plain = world.p1.patch("/api/clinic", data=b"{}", headers={"Content-Type": "text/plain"})
    assert plain.json["error"]["message"] == "Send the body as application/json."
    pr = colleague(world)
    assert pr.put("/api/clinic/logo", data=image_bytes(), headers=h).status_code == 403


def test_client_pages_show_the_clinic_name_logo_and_call_button(world):
    world.p1.patch(
        "/api/clinic", {"display_name": "Glow Skin Studio", "phone": "+44 (20) 7946-0000"}
    )
    world.p1.put("/api/clinic/logo", data=image_bytes(), headers={"Content-Type": "image/png"})
    logo = world.c1.get("/api/clinic").json["logo_url"]
    for path in ("/", "/welcome", "/settings", "/reminders", "/checkin"):
        page = world.c1.get(path).get_data(as_text=True)
        header = page.split("</header>")[0]
        assert "Glow Skin Studio" in header, path
        assert logo in header, path
        assert "Companion</a>" not in header
        # The tab and the app switcher name the clinic too, not the app's maker.
        assert re.search(r"<title>[^<]* · Glow Skin Studio</title>", page), path


def test_a_clients_error_page_wears_the_clinics_header_in_their_language(world):
    world.p1.patch("/api/clinic", {"display_name": "Glow Skin Studio"})
    assert world.c1.patch("/api/me", {"language": "es"}).status_code == 200
    for path in ("/no-such-page", "/photos/999999"):
        r = world.c1.get(path)
        header = r.get_data(as_text=True).split("</header>")[0]
        assert r.status_code == 404 and 'lang="es"' in header, path
        assert "Glow Skin Studio" in header and 'href="/reminders"' in header, path
    # In plain words in English too, not werkzeug's "The requested URL was not found...".
    assert world.c1.patch("/api/me", {"language": "en"}).status_code == 200
    page = world.c1.get("/no-such-page").get_data(as_text=True)
    assert "There is nothing at this address." in page and "requested URL" not in page
    # A practitioner's error page stays theirs: no client header, no client menu.
    page = world.p1.get("/clinic/clients/999999").get_data(as_text=True)
    assert "Glow Skin Studio" not in page and 'href="/reminders"' not in page


def test_an_expired_link_from_an_email_names_the_clinic_and_how_to_reach_it(world):
    # "Any other invalid link shows the clinic's contact when it can be known": a one-tap
    # link is signed, so even expired it names its client, and so their clinic.
    world.p1.patch("/api/clinic", {"display_name": "Glow Skin Studio", "phone": "+44 20 7946 0001"})
    session_id = world.p1.get(f"/api/clients/{world.client1['id']}").json["sessions"][0]["id"]
    stale = {"id": 1, "client_id": world.client1["id"], "session_id": session_id}
    stale["expires_at"] = iso(datetime.now(UTC) - timedelta(minutes=1))
    token = links.checkin_token(world.app.config["SECRET_KEY"], stale)
    r = world.anon.get(f"/checkin/link/{token}")
    page = r.get_data(as_text=True)
    assert r.status_code == 410 and "This check-in link has expired." in page
    assert "Glow Skin Studio" in page.split("</header>")[0]
    assert 'href="tel:+442079460001"' in page and "Contact Glow Skin Studio" in page
    # Not ours at all: nobody to name (two clinics here), plain words and no one's number.
    page = world.anon.get("/checkin/link/not-a-link").get_data(as_text=True)
    assert "This link is not valid." in page and 'href="tel:' not in page


def test_without_a_phone_the_answers_still_say_how_to_reach_the_clinic(world):
    # The urgent and review answers show the call button alone (full=False); a clinic with
    # no phone number left them saying "Contact Clinic One now" with nothing to act on.
    world.p1.patch("/api/clinic", {"phone": None})
    page = world.c1.get("/checkin").get_data(as_text=True)
    for answer in ("answer-urgent", "answer-review"):
        section = page.split(f'id="{answer}"')[1].split("</section>")[0]
        assert 'href="tel:' not in section
        assert "using the number on your booking or their website" in section, answer


def test_the_offline_page_goes_with_the_clinics_header(world):
    # The service worker keeps one offline page and fetches it again when a client page's
    # X-Companion-Shell differs from the cached copy's: so they must agree, and move with
    # the clinic's name and logo (it was precached before sign-in and kept "Companion").
    def shells():
        checkin = world.c1.get("/checkin")
        offline = world.c1.get("/offline?lang=en")
        assert "Glow Skin Studio" in offline.get_data(as_text=True).split("</header>")[0]
        return checkin.headers["X-Companion-Shell"], offline.headers["X-Companion-Shell"]

    world.p1.patch("/api/clinic", {"display_name": "Glow Skin Studio"})
    page, offline = shells()
    assert page == offline
    assert world.anon.get("/offline?lang=en").headers["X-Companion-Shell"] != page
    world.p1.put("/api/clinic/logo", data=image_bytes(), headers={"Content-Type": "image/png"})
    assert shells()[0] == shells()[1] != page
    assert world.c1.patch("/api/me", {"language": "es"}).status_code == 200
    es_page = world.c1.get("/reminders").headers["X-Companion-Shell"]
    assert es_page == world.c1.get("/offline?lang=es").headers["X-Companion-Shell"]
    assert es_page not in (page, world.c1.get("/offline?lang=en").headers["X-Companion-Shell"])


def test_the_offline_page_has_the_clinics_call_button_and_follows_its_number(world):
    # Offline with a worrying skin, the cached offline page offered only "Check in": a phone
    # call works without a connection, so the clinic's call button is there too, and a new
    # number makes the service worker fetch the page again (its X-Companion-Shell moves).
    offline = world.c1.get("/offline?lang=en")
    html = offline.get_data(as_text=True)
    main = html.split("<main")[1].split("</main>")[0]
    assert "Worried about your skin?" in main
    assert 'href="tel:+442079460001"' in main and "Call Clinic One" in main
    before = offline.headers["X-Companion-Shell"]
    assert world.p1.patch("/api/clinic", {"phone": "+44 20 7946 0999"}).status_code == 200
    moved = world.c1.get("/offline?lang=en")
    assert 'href="tel:+442079460999"' in moved.get_data(as_text=True)
    assert moved.headers["X-Companion-Shell"] != before
    assert (
        world.c1.get("/checkin").headers["X-Companion-Shell"] == moved.headers["X-Companion-Shell"]
    )
    # Without a number: plain words on how to reach them, never a dead end.
    world.p1.patch("/api/clinic", {"phone": None})
    main = world.c1.get("/offline?lang=es").get_data(as_text=True).split("<main")[1]
    assert 'href="tel:' not in main.split("</main>")[0]
    assert "¿Te preocupa tu piel?" in main


def test_the_invite_names_the_clinic_it_comes_from(world):
    world.p2.patch(
        "/api/clinic", {"display_name": "Clinic Two Studio", "phone": "+44 20 7946 0002"}
    )
    token = world.p2.post(f"/api/clients/{world.client2['id']}/invites").json["token"]
    page = world.anon.get(f"/i/{token}").get_data(as_text=True)
    assert "Clinic Two Studio invited you" in page
    assert "Clinic Two Studio" in page.split("</header>")[0]
    Api(world.app).post(f"/api/invites/{token}/redeem")
    used = Api(world.app).get(f"/i/{token}").get_data(as_text=True)
    assert "already used" in used
    assert 'href="tel:+442079460002"' in used  # a used link still says how to reach them


def test_owner_settings_page(world):
    page = world.p1.get("/clinic/profile")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'name="accent_color"' in text and 'name="logo"' in text
    pr = colleague(world)
    text = pr.get("/clinic/profile").get_data(as_text=True)
    assert 'name="accent_color"' not in text and "Only an owner" in text
    assert world.c1.get("/clinic/profile").status_code in (302, 403)


def test_the_manifest_carries_the_name_of_the_only_clinic(app, client, runner):
    assert client.get("/manifest.webmanifest").get_json()["short_name"] == "Companion"
    result = runner.invoke(
        [
            "create-practitioner",
            "--email",
            "o@glow.net",
            "--name",
            "Owner",
            "--clinic",
            "Glow",
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    r = client.get("/manifest.webmanifest")
    assert r.mimetype == "application/manifest+json"
    data = r.get_json()
    assert (data["name"], data["short_name"]) == ("Glow · Aftercare", "Glow")
    assert data["display"] == "standalone" and data["icons"]


def test_the_set_up_steps_name_the_app_as_its_home_screen_icon_does(app, runner):
    # An iPhone labels the icon with the pages' apple-mobile-web-app-title (the clinic's
    # name); other phones with the manifest's short name. The steps that send a client to
    # their Home Screen must name what they will find there, not "Companion".
    result = runner.invoke(
        ["create-practitioner", "--email", "o@glow.net", "--name", "Owner", "--clinic", "Glow"]
        + ["--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    owner, phone = Api(app), Api(app)
    owner.post("/api/auth/login", {"email": "o@glow.net", "password": PASSWORD})
    owner.patch("/api/clinic", {"display_name": "Glow Skin"})
    client_id = owner.post("/api/clients", {"name": "Ana"}).json["id"]
    token = owner.post(f"/api/clients/{client_id}/invites").json["token"]
    assert phone.post(f"/api/invites/{token}/redeem").status_code == 200

    def steps():
        page = phone.get("/welcome").get_data(as_text=True)
        ios = re.search(r'name="apple-mobile-web-app-title" content="([^"]*)"', page).group(1)
        return page, ios, app.test_client().get("/manifest.webmanifest").get_json()["short_name"]

    page, ios, short = steps()
    assert (ios, short) == ("Glow Skin", "Glow Skin")
    assert "Add Glow Skin to your Home Screen" in page and "Open Glow Skin from your" in page
    assert ">Install Glow Skin<" in page and "Companion" not in page.split("</header>")[1]
    # Too long for under an icon: the manifest's short name stays Companion, so do the words
    # for Android; an iPhone shows (a shortened) clinic name.
    owner.patch("/api/clinic", {"display_name": "Glow Skin Studio of Chelsea"})
    page, ios, short = steps()
    assert (ios, short) == ("Glow Skin Studio of Chelsea", "Companion")
    assert ">Install Companion<" in page and "Add Glow Skin Studio of Chelsea to your" in page
    assert "{app}, turn on Allow Notifications" in page  # app.js fills it in from the title


def test_with_two_clinics_the_manifest_stays_companion(world):
    data = world.anon.get("/manifest.webmanifest").get_json()
    assert data["short_name"] == "Companion" and data["name"] == "Companion aftercare"


def test_a_transparent_logo_is_flattened_on_white(world):
    img = Image.new("RGBA", (300, 100), (0, 0, 0, 0))  # see-through black
    img.paste((91, 33, 182, 255), (100, 25, 200, 75))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    h = {"Content-Type": "image/png"}
    url = world.p1.put("/api/clinic/logo", data=buf.getvalue(), headers=h).json["logo_url"]
    logo = Image.open(io.BytesIO(world.anon.get(url).data)).convert("RGB")
    assert all(c > 245 for c in logo.getpixel((5, 5)))  # white, not black
    r, g, b = logo.getpixel((logo.width // 2, logo.height // 2))
    assert abs(r - 91) < 12 and abs(g - 33) < 12 and abs(b - 182) < 12


def test_home_shows_how_to_reach_the_clinic(world):
    world.p1.patch(
        "/api/clinic",
        {
            "phone": "+44 20 7946 0000",
            "address": "1 High Street",
            "opening_hours": "Mon–Fri 9:00–18:00",
            "booking_url": "https://glow.example/book",
        },
    )
    page = world.c1.get("/").get_data(as_text=True)
    card = page[page.index('id="clinic-h"') :]
    assert 'href="tel:+442079460000"' in card
    assert "1 High Street" in card and "Mon–Fri 9:00–18:00" in card
    assert 'href="https://glow.example/book"' in card


def test_the_clinics_name_is_not_repeated_under_its_call_button(world):
    # "Call Clinic One" then "Clinic One" alone in bold: the name twice with nothing after it.
    # With an address, the name heads it; with no phone, it says to ask for the number.
    def card():
        page = world.c1.get("/").get_data(as_text=True)
        return page[page.index('id="clinic-h"') :].split("</section>")[0]

    assert "Call Clinic One" in card() and 'class="contact-name"' not in card()
    world.p1.patch("/api/clinic", {"address": "1 High Street"})
    assert "<strong>Clinic One</strong></p>" in card()
    world.p1.patch("/api/clinic", {"phone": None})
    assert "<strong>Clinic One</strong>: ask at the clinic for their phone number." in card()


def test_the_home_pages_urgent_card_has_the_emergency_call_button_too(world):
    """The urgent answer stays on the home page until the next check-in; its words say to seek
    emergency care for trouble breathing or eye swelling (U4), with no number to tap there."""
    body = checkin_body(warning_signs={"eye_or_breathing": True})
    assert world.c1.post("/api/checkins", body).json["assessment"]["status"] == "urgent"

    def card():
        page = world.c1.get("/").get_data(as_text=True)
        return page[page.index('class="card assessment assessment-urgent"') :].split("</section>")[
            0
        ]

    assert 'href="tel:+442079460001"' in card() and "emergency-call" not in card()
    assert world.p1.patch("/api/clinic", {"emergency_number": "999"}).status_code == 200
    assert '<a class="button call emergency-call" href="tel:999">Call 999</a>' in card()


def test_the_emergency_number_is_a_call_button_on_the_urgent_screen(world):
    assert world.c1.get("/api/clinic").json["emergency_number"] is None
    page = world.c1.get("/checkin").get_data(as_text=True)
    urgent = page[page.index('id="answer-urgent"') :]
    # Unset: the common numbers in words, no button to a number that may be wrong here.
    assert "112 in Europe, 999 in the UK, 911 in the US" in urgent
    assert 'class="button call emergency-call"' not in urgent
    r = world.p1.patch("/api/clinic", {"emergency_number": " 000 "})
    assert r.status_code == 200, r.json
    assert r.json["emergency_number"] == "000"
    assert world.c1.get("/api/clinic").json["emergency_number"] == "000"
    page = world.c1.get("/checkin").get_data(as_text=True)
    urgent = page[page.index('id="answer-urgent"') : page.index('id="answer-review"')]
    emergency = urgent[urgent.index('class="emergency"') :]
    assert re.search(
        r'<a class="button call emergency-call" href="tel:000">Call 000</a>', emergency
    )
    assert "112 in Europe" not in urgent
    # Another clinic's clients keep the words; clearing brings them back here too.
    assert "112 in Europe" in world.c2.get("/checkin").get_data(as_text=True)
    assert world.p1.patch("/api/clinic", {"emergency_number": ""}).json["emergency_number"] is None
    assert "112 in Europe" in world.c1.get("/checkin").get_data(as_text=True)


def test_the_owner_sets_the_emergency_number_on_the_profile_page(world):
    page = world.p1.get("/clinic/profile").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = {"csrf_token": token, "display_name": "Clinic One", "emergency_number": "999"}
    r = world.p1.http.post("/clinic/profile", data=form)
    assert r.status_code == 302, r.get_data(as_text=True)
    assert world.p1.get("/api/clinic").json["emergency_number"] == "999"
    r = world.p1.http.post("/clinic/profile", data={**form, "emergency_number": "9-9-9"})
    assert r.status_code == 422
    text = r.get_data(as_text=True)
    assert 'id="emergency_number-error"' in text and "digits only" in text
    assert world.p1.get("/api/clinic").json["emergency_number"] == "999"


def test_the_manifest_says_it_varies_with_the_browsers_language(client):
    # Its name, description and lang follow Accept-Language: a cache must not hand the
    # Spanish copy to an English phone.
    r = client.get("/manifest.webmanifest", headers={"Accept-Language": "es"})
    assert r.get_json()["lang"] == "es"
    assert "Accept-Language" in r.vary


def test_an_owner_moves_the_clinic_to_its_real_time_zone(world):
    """create-practitioner makes a clinic in UTC unless told otherwise; the owner can put it in
    its real zone (API and Clinic page): new clients default to it, exports and the audit log
    read their days and times in it; existing clients keep their own zone."""
    before = world.client1["timezone"]
    r = world.p1.patch("/api/clinic", {"timezone": "America/New_York"})
    assert r.status_code == 200, r.json
    assert r.json["timezone"] == "America/New_York"
    assert world.p1.get("/api/me").json["clinic"]["timezone"] == "America/New_York"
    assert world.c1.get("/api/clinic").json["timezone"] == "America/New_York"
    assert world.p1.post("/api/clients", {"name": "Newcomer"}).json["timezone"] == (
        "America/New_York"
    )
    assert world.p1.get(f"/api/clients/{world.client1['id']}").json["timezone"] == before
    assert "(America/New_York)" in world.p1.get("/clinic/exports").get_data(as_text=True)
    assert world.p2.get("/api/clinic").json["timezone"] == "Europe/London"
    detail = sql(world.app, "SELECT detail FROM audit_log WHERE action = 'clinic_changed'")
    assert detail == [("fields=timezone",)]
    for bad in (None, "", "Mars/Olympus", 5):
        r = world.p1.patch("/api/clinic", {"timezone": bad})
        assert r.status_code == 422 and "timezone" in r.json["error"]["fields"], (bad, r.json)
    assert colleague(world).patch("/api/clinic", {"timezone": "UTC"}).status_code == 403
    assert world.p1.get("/api/clinic").json["timezone"] == "America/New_York"
    # The Clinic page: the zone is a field of the owner's form, checked the same way.
    page = world.p1.get("/clinic/profile").get_data(as_text=True)
    assert 'name="timezone"' in page and 'value="America/New_York"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = {"csrf_token": token, "display_name": "Clinic One", "timezone": "Europe/Madrid"}
    assert world.p1.http.post("/clinic/profile", data=form).status_code == 302
    assert world.p1.get("/api/clinic").json["timezone"] == "Europe/Madrid"
    r = world.p1.http.post("/clinic/profile", data={**form, "timezone": "Nowhere/Else"})
    assert r.status_code == 422 and 'id="timezone-error"' in r.get_data(as_text=True)
    assert world.p1.get("/api/clinic").json["timezone"] == "Europe/Madrid"


def test_the_start_page_speaks_for_the_only_clinic_not_the_software(app, client, runner):
    """A signed-out phone on a one-clinic instance reads who sends its reminders: the clinic,
    as its header and installed app say, not the software's name."""
    result = runner.invoke(
        ["create-practitioner", "--email", "o@glow.net", "--name", "Owner", "--clinic", "Glow"]
        + ["--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    page = client.get("/start").get_data(as_text=True)
    assert "Glow sends you aftercare reminders" in page
    assert "Used this app on this phone before?" in page
    # A reminder email's link opened in a mail app's own browser lands here too: it was
    # told "this phone was signed out" and "your check-ins are kept" (unsent ones are not).
    assert "or this browser is not the one you opened your invite in" in page
    assert "The check-ins you sent are kept." in page
    assert "your aftercare and check-ins are kept" not in page
    assert "Companion" not in page.split("</header>")[1]
    page = client.get("/start", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert "Glow te envía recordatorios" in page and "¿Ya usabas esta app" in page


def test_new_clients_start_with_the_clinics_quiet_hours_and_language(world):
    """A Madrid clinic whose clients read Spanish and sleep until 09:00 says so once (API and
    Clinic page); every client added after starts with it, and keeps their own afterwards."""
    face = world.p1.get("/api/clinic").json
    assert (face["quiet_hours"], face["language"]) == ({"start": "21:00", "end": "08:00"}, "en")
    body = {"quiet_hours": {"start": "22:00", "end": "09:00"}, "language": "es"}
    r = world.p1.patch("/api/clinic", body)
    assert r.status_code == 200, r.json
    assert (r.json["quiet_hours"], r.json["language"]) == (body["quiet_hours"], "es")
    new = world.p1.post("/api/clients", {"name": "Lucía"}).json
    assert (new["quiet_hours"], new["language"]) == ({"start": "22:00", "end": "09:00"}, "es")
    chosen = {"name": "Sam", "language": "en", "quiet_hours": {"start": "23:00", "end": "07:00"}}
    new = world.p1.post("/api/clients", chosen).json
    assert (new["quiet_hours"], new["language"]) == (chosen["quiet_hours"], "en")
    old = world.p1.get(f"/api/clients/{world.client1['id']}").json
    assert (old["quiet_hours"], old["language"]) == ({"start": "21:00", "end": "08:00"}, "en")
    # A new client's reminders keep the clinic's quiet hours: nothing before 09:00 there.
    lucia = world.p1.get("/api/clients").json["clients"]
    lucia = next(c for c in lucia if c["name"] == "Lucía")
    session = world.new_session(world.p1, lucia["id"], hours_ago=1)
    for row in session["schedule"]:
        local = datetime.fromisoformat(row["due_at"].replace("Z", "+00:00"))
        local = local.astimezone(ZoneInfo("Europe/London"))
        if row["status"] == "pending":
            assert not (local.hour >= 22 or local.hour < 9), row
    for bad in (
        {"quiet_hours": None},
        {"quiet_hours": {"start": "25:00", "end": "08:00"}},
        {"quiet_hours": {"start": "21:00"}},
        {"language": None},
        {"language": "fr"},
    ):
        r = world.p1.patch("/api/clinic", bad)
        assert r.status_code == 422, (bad, r.json)
        assert set(r.json["error"]["fields"]) <= {
            "quiet_hours",
            "quiet_hours.start",
            "quiet_hours.end",
            "language",
        }
    assert colleague(world).patch("/api/clinic", {"language": "en"}).status_code == 403
    assert world.p1.get("/api/clinic").json["language"] == "es"
    # The Clinic page and the Add-a-client page.
    page = world.p1.get("/clinic/profile").get_data(as_text=True)
    assert 'name="quiet_start" type="time" value="22:00"' in page
    assert '<option value="es" lang="es" selected>' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = {"csrf_token": token, "display_name": "Clinic One", "quiet_start": "21:30"}
    form |= {"quiet_end": "07:30", "language": "en"}
    assert world.p1.http.post("/clinic/profile", data=form).status_code == 302
    face = world.p1.get("/api/clinic").json
    assert (face["quiet_hours"], face["language"]) == ({"start": "21:30", "end": "07:30"}, "en")
    r = world.p1.http.post("/clinic/profile", data={**form, "quiet_end": "7h"})
    assert r.status_code == 422 and "HH:MM" in r.get_data(as_text=True)
    world.p1.patch("/api/clinic", {"language": "es"})
    page = world.p1.get("/clinic/clients/new").get_data(as_text=True)
    assert '<option value="es" lang="es" selected>' in page


@pytest.mark.parametrize("button", [{"action": "upload_logo"}, {}])
def test_upload_logo_without_a_file_changes_nothing_and_says_what_to_do(world, button):
    # Pressing "Upload logo" before choosing a file was read as the details form with every
    # field empty: the clinic's phone, address and booking link were erased, "saved".
    details = {"phone": "+44 20 7946 0000", "address": "1 High Street"}
    details["booking_url"] = "https://glow.example/book"
    assert world.p1.patch("/api/clinic", details).status_code == 200
    before = world.p1.get("/api/clinic").json
    page = world.p1.get("/clinic/profile").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    empty = (io.BytesIO(b""), "")  # the browser's part for a file input left empty
    r = world.p1.http.post(
        "/clinic/profile",
        data={"csrf_token": token, "logo": empty, **button},
        content_type="multipart/form-data",
    )
    assert r.status_code == 422
    assert "Choose an image first, then press Upload logo." in r.get_data(as_text=True)
    # The page opens at its top: the focus takes it down to the logo and its error.
    assert re.search(r'<input id="logo"[^>]* autofocus>', r.get_data(as_text=True))
    assert world.p1.get("/api/clinic").json == before
    assert 'name="action" value="upload_logo">Upload logo</button>' in page
