"""A Spanish-speaking client's phone in a real Chromium (390x844): the invite, every client
page, the scripts' words and the offline page are in Spanish, with no sideways scroll.

The browser itself asks for English (headless Chromium's Accept-Language is en-US): every
Spanish word here comes from the client's record, not from the browser.
"""

import pytest
from browser_support import (
    PHONE,
    axe_violations,
    chromium_context,
    require_chromium,
    running_server,
    screenshot,
    serve_axe,
    wait_until,
)
from conftest import World, checkin_body
from playwright.sync_api import expect

PAGES = {
    "/": "Hola, Alice",
    "/checkin": "¿Cómo está tu piel?",
    "/reminders": "Tus recordatorios",
    "/settings": "Ajustes",
    "/welcome": "Te damos la bienvenida, Alice",
}


def seed(app) -> dict:
    world = World(app)
    client_id = world.client1["id"]
    assert world.p1.patch(f"/api/clients/{client_id}", {"language": "es"}).json["language"] == "es"
    answer = world.c1.post("/api/checkins", checkin_body(redness=1, swelling=1, pain=1))
    assert answer.status_code == 201, answer.json
    invite = world.p1.post(f"/api/clients/{client_id}/invites")
    return {"token": invite.json["token"]}


@pytest.fixture(scope="module")
def server():
    require_chromium()
    with running_server(seed) as running:
        yield running


@pytest.fixture(scope="module")
def phone(server):
    with chromium_context(
        PHONE,
        permissions=["notifications", "background-sync"],
        origin=server.url,
        base_url=server.url,
    ) as context:
        context.set_default_timeout(15_000)
        serve_axe(context)
        yield context


@pytest.fixture
def page(phone):
    page = phone.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    yield page
    phone.set_offline(False)
    page.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def no_sideways_scroll(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def nav_rows(page) -> tuple[int, float, bool]:
    """How many rows the header's links take, the lowest link's height (px), and whether
    they fit in the header (their widths add up to no more than the nav's)."""
    return page.evaluate("""() => {
        const nav = document.querySelector("header nav");
        const boxes = [...nav.querySelectorAll("a")].map((a) => a.getBoundingClientRect());
        const width = boxes.reduce((sum, b) => sum + b.width, 0);
        return [new Set(boxes.map((b) => Math.round(b.top))).size,
                Math.min(...boxes.map((b) => b.height)), width <= nav.clientWidth];
    }""")


def offline_copy_language(page) -> str | None:
    """The language of the offline page the service worker keeps (its Content-Language)."""
    return page.evaluate("""async () => {
        for (const name of await caches.keys()) {
          const found = await (await caches.open(name)).match("/offline");
          if (found) return found.headers.get("Content-Language");
        }
        return null;
    }""")


def test_a_spanish_client_reads_spanish_everywhere(page, phone, server):
    # The invite names the client's language before anyone is signed in.
    page.goto(f"/i/{server.seeded['token']}")
    assert page.evaluate("() => document.documentElement.lang") == "es"
    screenshot(page, "es-phone-invite")
    page.get_by_role("button", name="Abrir mis cuidados").tap()
    expect(page.get_by_role("heading", level=1)).to_have_text("Te damos la bienvenida, Alice")
    page.evaluate("() => navigator.serviceWorker.ready.then(() => true)")

    for path, heading in PAGES.items():
        page.goto(path)
        assert page.evaluate("() => document.documentElement.lang") == "es", path
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        expect(page.get_by_role("navigation")).to_contain_text("Registrar")
        assert no_sideways_scroll(page), path

    # The scripts speak Spanish too: the check-in form's own errors, beside their questions.
    page.goto("/checkin")
    page.get_by_role("button", name="Enviar registro").click()
    expect(page.locator("#err-redness")).to_have_text("Elige lo roja que ves tu piel.")
    expect(page.locator("#checkin-error")).to_have_text("Revisa las respuestas marcadas arriba.")

    # The service worker keeps its offline page in the client's language (it was first
    # fetched in the browser's English, before the sign-in).
    page.goto("/reminders")
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    page.goto("/settings")
    assert wait_until(page, lambda: offline_copy_language(page) == "es"), offline_copy_language(
        page
    )
    phone.set_offline(True)
    page.goto("/reminders")
    expect(page.get_by_role("heading", level=1)).to_have_text("No tienes conexión")
    assert page.evaluate("() => document.documentElement.lang") == "es"
    screenshot(page, "es-phone-offline")

    # A check-in made offline is kept, in Spanish words.
    page.goto("/checkin")
    expect(page.get_by_role("heading", level=1)).to_have_text("¿Cómo está tu piel?")
    page.get_by_role("group", name="Enrojecimiento").get_by_role(
        "radio", name="1 Rosa suave"
    ).check()
    page.get_by_role("group", name="Hinchazón").get_by_role("radio", name="0 Ninguna").check()
    page.get_by_role("group", name="Dolor").get_by_role("radio", name="2", exact=True).check()
    page.get_by_role("button", name="Enviar registro").click()
    expect(page.locator("#answer-saved .answer-message")).to_have_text(
        "Guardado en este teléfono; se enviará cuando tengas conexión."
    )
    expect(page.locator("#outbox-status")).to_have_text(
        "1 registro guardado en este teléfono; se enviará cuando tengas conexión"
    )
    phone.set_offline(False)

    # An urgent answer takes the screen, in Spanish, with the call button in view.
    page.goto("/checkin")
    page.get_by_role("group", name="Enrojecimiento").get_by_role(
        "radio", name="2 Claramente roja"
    ).check()
    page.get_by_role("group", name="Hinchazón").get_by_role(
        "radio", name="1 Apenas se nota"
    ).check()
    page.get_by_role("group", name="Dolor").get_by_role("radio", name="3", exact=True).check()
    page.get_by_role("checkbox", name="Pus, costras amarillas o secreción").check()
    page.get_by_role("button", name="Enviar registro").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ponte en contacto ya con Clinic One")
    expect(page.get_by_role("link", name="Llamar a Clinic One")).to_be_in_viewport()
    screenshot(page, "es-phone-urgent", full_page=False)

    check_layout(page)


def chart_text_px(page) -> float:
    """The smallest text of the home's recovery chart as drawn, in CSS pixels."""
    return page.evaluate(
        """() => { const svg = document.querySelector("svg.chart");
          const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
          return Math.min(...[...svg.querySelectorAll("text")].map(
            (t) => parseFloat(getComputedStyle(t).fontSize) * scale)); }"""
    )


def check_layout(page) -> None:
    """Every client page in Spanish at three sizes: no sideways scroll, the nav on one line
    (Spanish's words are the longer: "Recordatorios"), no serious axe violation
    at phone size, light and dark; screenshots es-<size>-<page>-<scheme>.png. (Dark changes
    colours, not widths: the other sizes are looked at in light only, to keep the suite short.)"""
    for size, (width, height) in (
        ("phone", (390, 844)),
        ("tablet", (1024, 768)),
        ("narrow", (320, 640)),
    ):
        page.set_viewport_size({"width": width, "height": height})
        for scheme in ("light", "dark") if size == "phone" else ("light",):
            page.emulate_media(color_scheme=scheme)
            for path in (*PAGES, "/offline"):
                page.goto(path)
                assert page.evaluate("() => document.documentElement.lang") == "es", path
                assert no_sideways_scroll(page), (path, size)
                if path != "/offline":  # signed-in pages: the four links on one row, 44 px high
                    rows, lowest, fits = nav_rows(page)
                    assert rows == 1 and lowest >= 44 and fits, (path, size, rows, lowest)
                if path == "/" and size == "narrow":  # the chart's words, legible at 320 px
                    assert chart_text_px(page) >= 12.5, chart_text_px(page)
                if size == "phone":  # axe: lang, contrast and names hold in Spanish too
                    assert not axe_violations(page), (path, scheme)
                name = path.strip("/") or "home"
                screenshot(page, f"es-{size}-{name}-{scheme}")
