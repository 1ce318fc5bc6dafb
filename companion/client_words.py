"""The words the client app's scripts show (app.js, checkin.js), in the client's language.

Every client page renders them as JSON (templates/client/base.html, `#client-messages`) and
app.js reads them at start, so the scripts hold no words of their own and the gettext
catalogs are the one place they are translated. Keys are the scripts' `MESSAGES.<key>`;
"{n}" is filled in by the script, "{app}" by app.js with the name the app has on an iPhone's Home
Screen (the page's apple-mobile-web-app-title).
"""

from flask_babel import get_locale

from companion.i18n import gettext as _
from companion.i18n import lazy_gettext as _l

# What an error page says to a reader of another language than English, by the error's code
# (the English message, which also goes to the API, is shown to English readers as it is).
PROBLEMS = {
    "link_expired": _l(
        "This check-in link has expired. Open your clinic's app, or wait for your next reminder."
    ),
    "link_revoked": _l("This link no longer works. Please contact your clinic."),
    "link_not_found": _l("This link is not valid. Please contact your clinic."),
    "not_found": _l("There is nothing at this address."),
}


def page_problem(code: str | None, message: str, for_client: bool = False) -> str:
    """An error page's sentence in the reader's language: a client reads ours in any language
    (werkzeug's English 404 text is a server's wording); practitioners the message as it is."""
    locale = get_locale()
    english = locale is None or locale.language == "en"
    if code not in PROBLEMS or (english and not for_client):
        return message
    return str(PROBLEMS[code])


def client_messages() -> dict:
    """Return the scripts' words in this request's language."""
    return {
        "remindersOn": _("Reminders are on for this device"),
        "remindersStarting": _("Turning on reminders…"),
        "remindersDismissed": _(
            "Reminders are still off. Tap the button again when you are ready."
        ),
        "remindersDenied": _(
            "Notifications are blocked for this site. To get reminders, allow notifications for"
            " this site in your browser settings, then tap the button again."
        ),
        "remindersDeniedAndroid": _(
            "Notifications are blocked for this site. To get reminders, allow notifications for"
            " this site in your browser settings: tap the icon left of the address (or ⋮ →"
            " Settings → Site settings → Notifications), allow them, then tap the button again."
        ),
        "remindersDeniedIos": _(
            "Notifications are blocked for this app. To get reminders, open the iPhone's"
            " Settings → Notifications → {app}, turn on Allow Notifications, then tap the"
            " button again."
        ),
        "remindersIos": _(
            "On iPhone and iPad, reminders only work from the Home Screen app: tap Share → Add to"
            " Home Screen, open {app} from your Home Screen, then tap this button again."
        ),
        "remindersUnsupported": _(
            "This browser cannot show reminders. Open this page in a recent Chrome, Edge, Firefox"
            " or Safari."
        ),
        "remindersOffline": _(
            "Could not turn on reminders: no connection. Try again when you are online."
        ),
        "remindersSignedOut": _(
            "You are signed out. Open your invite link again, then turn on reminders."
        ),
        "remindersNotReady": _("The app is still setting up. Try again in a moment."),
        "pushServiceUnreachable": _(
            "Could not reach the push service. Check your connection and try again."
        ),
        "pushRefused": _(
            "This browser refused to turn on reminders. Check its notification settings and try"
            " again."
        ),
        "subscriptionNotSaved": _("Could not save reminders on the server. Please try again."),
        "checkinSaved": _("Saved on this phone, will send when online."),
        "checkinSavedLater": _(
            "Saved on this phone. The clinic's server could not take it just now; it will be"
            " sent automatically."
        ),
        "checkinNotSaved": _(
            "This check-in could not be sent or saved on this phone. Your answers are still here:"
            " try again in a moment."
        ),
        "checkinSent": _("Check-in sent."),
        "queuedSignedOut": _(
            "This phone is signed out, so the check-ins saved on it could not be sent. Ask your"
            " clinic for a new link, then check in again."
        ),
        "queuedOne": _("1 check-in saved on this phone, will send when online"),
        "queuedMany": _("{n} check-ins saved on this phone, will send when online"),
        "photoSent": _("1 photo sent to your clinic."),
        "photosSentMany": _("{n} photos sent to your clinic."),
        "photosFailed": _("Some photos could not be sent; your check-in is saved."),
        "photosOffline": _(
            "Photos are sent only when you are online; your check-in is saved on this phone."
        ),
        "checkAnswers": _("Please check the answers marked above."),
        "fieldMissing": {
            "redness": _("Choose how red your skin looks."),
            "swelling": _("Choose how swollen your skin is."),
            "pain": _("Choose a number from 0 to 10."),
        },
        "fieldInvalid": {
            "redness": _("Choose one of the five pictures."),
            "swelling": _("Choose one of the five pictures."),
            "pain": _("Choose a number from 0 to 10."),
            "note": _("Keep the note under 2,000 characters."),
        },
        "photoReady": _("1 photo ready to send"),
        "photosReadyMany": _("{n} photos ready to send"),
        "savedCheckinSent": _("Your check-in saved on this phone has been sent."),
        "savedCheckinRefused": _("A check-in saved on this phone could not be accepted:"),
        "scriptsMissing": _("The app did not load completely. Reload the page and try again."),
        "assessmentLabels": {
            "expected": _("As expected"),
            "review": _("Needs review"),
            "urgent": _("Urgent"),
        },
    }
