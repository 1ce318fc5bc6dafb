"""The emails themselves: short, plain text and HTML, in the clinic's name.

A client's email is the clinic speaking: From, subject, body and buttons name the clinic (or
nothing), never the software; an urgent alert to an owner is the software's ("Companion · <clinic>").

A client's reminder carries a one-click unsubscribe (RFC 8058) and, for a check-in, a
one-tap link to that check-in. In discreet mode the subject, the preview and the text
say only "New aftercare reminder". A client's reminder is in their language (the step's
text was chosen when it was planned; the fixed words come from the gettext catalogs); an
alert to an owner stays English. No HTTP, no SMTP: the dispatcher sends what these build.
"""

import html
import secrets
from datetime import datetime
from email import charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, make_msgid

from companion.reminders import words

STYLE = (
    "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;font-size:16px;"
    "line-height:1.5;max-width:34em;margin:0 auto;padding:16px"
)
BUTTON = (
    "display:inline-block;padding:12px 20px;border-radius:8px;background:#0b6e4f;"
    "color:#ffffff;text-decoration:none;font-weight:600"
)


# The email.mime classes (the compat32 policy), not EmailMessage: the modern policy parses
# every header it is given, which made composing and sending cost ~10x more (measured with
# benchmarks/dispatch.py --email). Text goes quoted-printable: readable in a raw view.
UTF8 = charset.Charset("utf-8")
UTF8.body_encoding = charset.QP


def _message(clinic: str, sender: str, to: str, subject: str, now: datetime) -> MIMEMultipart:
    # A random boundary of our own: the generator's default scans the whole text for clashes.
    message = MIMEMultipart("alternative", boundary="=_" + secrets.token_hex(16))
    message["From"] = formataddr((clinic, sender), charset="utf-8")
    message["To"] = to
    message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8")
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid("companion", domain=sender.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"  # no out-of-office replies, please
    return message


def _html(
    preview: str,
    paragraphs: list[str],
    button: tuple[str, str] | None,
    foot: str,
    language: str = "en",
) -> str:
    """A small HTML body; `preview` is the hidden line mail apps show beside the subject."""
    parts = [
        f'<!doctype html><html lang="{html.escape(language)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width">'
        '<meta name="color-scheme" content="light dark"></head>'
        f'<body><div style="{STYLE}">'
        f'<span style="display:none;max-height:0;overflow:hidden">{html.escape(preview)}</span>'
    ]
    parts.append(f'<h1 style="font-size:20px;margin:0 0 12px">{html.escape(paragraphs[0])}</h1>')
    parts += [f"<p>{html.escape(p)}</p>" for p in paragraphs[1:]]
    if button:
        parts.append(
            f'<p><a href="{html.escape(button[1])}" style="{BUTTON}">{html.escape(button[0])}</a></p>'
        )
    # #767676: 4.5:1 on white, and still readable where a mail app shows it on dark.
    parts.append(f'<p style="font-size:13px;color:#767676">{foot}</p></div></body></html>')
    return "".join(parts)


def _text(body: str, subtype: str = "plain") -> MIMEText:
    return MIMEText(body, subtype, UTF8)


def reminder(
    row: dict,
    to: str,
    clinic: str,
    sender: str,
    client: dict,
    links: dict[str, str],
    now: datetime,
) -> MIMEMultipart:
    """A client's reminder. links: "app", "unsubscribe", and "checkin" for a check-in."""
    language = client.get("language") or "en"
    t = words.words(language)
    discreet = bool(client["discreet"])
    hidden = words.discreet_body(language)
    message = _message(clinic, sender, to, hidden if discreet else row["title"], now)
    message["Content-Language"] = language
    message["List-Unsubscribe"] = f"<{links['unsubscribe']}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    checkin = links.get("checkin")
    until = words.day_and_time(row["expires_at"], client["timezone"], language)
    if checkin:
        action = (t.gettext("Check in now"), checkin)
        note = (
            t.gettext(
                "The link opens this check-in only, on any phone or computer, until %(weekday)s"
                " %(date)s at %(time)s."
            )
            % until
        )
    else:
        # The client's app is their clinic's (its name in the app's header and on an iPhone's
        # Home Screen), not the software's.
        action = (t.gettext("Open the %(clinic)s app") % {"clinic": clinic}, links["app"])
        note = ""
    if discreet:
        paragraphs = [hidden + "."]
        if not checkin:
            paragraphs.append(t.gettext("Open the app to read it."))
    else:
        paragraphs = [row["title"], row["body"]]
    if note:
        paragraphs.append(note)
    text = "\n\n".join(paragraphs + [f"{action[0]}: {action[1]}"])
    why = t.gettext("You get these emails from %(clinic)s about your aftercare.") % {
        "clinic": clinic
    }
    stop = t.gettext("Stop these emails")
    message.attach(_text(f"{text}\n\n-- \n{why} {stop}: {links['unsubscribe']}\n"))
    foot = (
        f'{html.escape(why)} <a href="{html.escape(links["unsubscribe"])}">{html.escape(stop)}</a>.'
    )
    preview = hidden if discreet else row["body"][:140]
    message.attach(_text(_html(preview, paragraphs, action, foot, language), "html"))
    return message


def alert(row: dict, to: str, clinic: str, sender: str, link: str, now: datetime) -> MIMEMultipart:
    """An urgent alert to a clinic owner (the clinic's email_alerts setting): the software
    speaking to its operator, so it comes from Companion, for the clinic."""
    message = _message(f"Companion · {clinic}", sender, to, row["title"], now)
    message["Importance"] = "high"
    paragraphs = [row["title"], row["body"], "Open the client's record to review it."]
    message.attach(_text("\n\n".join(paragraphs) + f"\n\n{link}\n"))
    foot = (
        f"Sent to the owners of {html.escape(clinic)} because urgent alerts by email are on"
        " in the clinic's settings."
    )
    message.attach(
        _text(_html(row["body"][:140], paragraphs, ("Open the record", link), foot), "html")
    )
    return message
