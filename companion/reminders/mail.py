"""Email over SMTP (the standard library's smtplib): the settings, and a Mailer that sends a
dispatch batch's messages over one connection and turns each answer into an Outcome."""

import smtplib
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from email.policy import compat32
from email.utils import parseaddr
from typing import Any

from companion.reminders.push import Outcome

SECURITIES = ("none", "starttls", "tls")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}


@dataclass(frozen=True)
class MailSettings:
    host: str
    port: int
    security: str  # none | starttls | tls
    user: str | None
    password: str | None
    sender: str  # the From address (the clinic's name goes beside it)
    envelope_from: str  # MAIL FROM: where bounces go
    timeout: float = 10.0
    ca_file: str | None = None  # trusted CAs (PEM) instead of the system's


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """A client context that verifies the server's certificate and name (always): against the
    system's CAs, or only those in ca_file (COMPANION_SMTP_CA_FILE). ValueError if unreadable."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as e:
        raise ValueError(f"COMPANION_SMTP_CA_FILE cannot be used: {e}") from e


def settings_from(cfg: Mapping) -> MailSettings | None:
    """Return the SMTP settings, None when email is off (no SMTP_HOST); ValueError when bad."""
    host = (cfg.get("SMTP_HOST") or "").strip()
    if not host:
        return None
    security = str(cfg.get("SMTP_SECURITY") or "starttls").strip().lower()
    if security not in SECURITIES:
        raise ValueError(f"COMPANION_SMTP_SECURITY must be one of {', '.join(SECURITIES)}")
    port = cfg.get("SMTP_PORT") or DEFAULT_PORTS[security]
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError("COMPANION_SMTP_PORT must be a port number (1-65535)")
    if not str(cfg.get("MAIL_FROM") or "").strip():
        raise ValueError(
            "COMPANION_MAIL_FROM is not set: email needs a From address with COMPANION_SMTP_HOST,"
            " e.g. reminders@yourclinic.com"
        )
    sender = parseaddr(cfg.get("MAIL_FROM"))[1]
    if "@" not in sender:
        raise ValueError(
            "COMPANION_MAIL_FROM must be an email address, e.g. reminders@yourclinic.com"
        )
    envelope = parseaddr(cfg.get("MAIL_ENVELOPE_FROM") or "")[1] or sender
    ca_file = cfg.get("SMTP_CA_FILE") or None
    if ca_file is not None:
        tls_context(ca_file)  # refused here, at start, rather than at the first email
    return MailSettings(
        host,
        port,
        security,
        cfg.get("SMTP_USER") or None,
        cfg.get("SMTP_PASSWORD") or None,
        sender,
        envelope,
        float(cfg.get("SMTP_TIMEOUT") or 10.0),
        ca_file,
    )


def describe(cfg: Mapping) -> tuple[bool, str]:
    """One line for `companion doctor`: whether email is usable, and how it is set up."""
    try:
        found = settings_from(cfg)
    except ValueError as e:
        return False, f"email: {e}"
    if found is None:
        return True, "email off (set COMPANION_SMTP_HOST to send reminders by email)"
    login = f", as {found.user}" if found.user else ""
    trust = f", trusting {found.ca_file}" if found.ca_file and found.security != "none" else ""
    return True, (
        f"email via {found.host}:{found.port} ({found.security}{login}{trust}), from {found.sender}"
    )


def reach(settings: MailSettings) -> tuple[bool, str]:
    """For `companion doctor`: open a connection as the dispatcher does (TLS and sign-in
    included) and close it, so a server that is down or refuses the sign-in is found at
    3 am by the doctor, not by the clients who got no email."""
    where = f"email server {settings.host}:{settings.port}"
    try:
        conn = Mailer(settings)._connect()
    except smtplib.SMTPAuthenticationError as e:
        return False, f"{where} refused the sign-in: {e.smtp_code} {_text(e.smtp_error)}"
    except (OSError, smtplib.SMTPException) as e:
        return False, (
            f"{where} cannot be reached ({_describe(e)}): emails wait, retried, until it"
            " answers or their reminder expires"
        )
    try:
        conn.quit()
    except (smtplib.SMTPException, OSError):
        conn.close()
    return True, f"{where} answered" + (" and accepted the sign-in" if settings.user else "")


# SMTP's line ends; headers folded only past SMTP's limit, so a List-Unsubscribe URL stays on
# its header's line (RFC 8058 readers differ in how they unfold).
SMTP_POLICY = compat32.clone(linesep="\r\n", max_line_length=998)

# Errors that say the connection (not one message) is broken: the rest of the batch waits.
CONNECTION_ERRORS = (OSError, smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError)


class Mailer:
    """Send messages over one SMTP connection per send_many() call (a dispatch batch)."""

    def __init__(self, settings: MailSettings):
        self.settings = settings
        self.context = tls_context(settings.ca_file) if settings.security != "none" else None
        self.connections = 0  # opened so far (the benchmark and tests read it)

    def _connect(self) -> smtplib.SMTP:
        s, context = self.settings, self.context
        if s.security == "tls":
            conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
        else:
            conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            conn.ehlo()
            if s.security == "starttls":
                conn.starttls(context=context)
                conn.ehlo()
            if s.user:
                conn.login(s.user, s.password or "")
        except BaseException:
            conn.close()
            raise
        self.connections += 1
        return conn

    def send_many(self, messages: list[tuple[Any, Message]]) -> list[tuple[Any, Outcome]]:
        """Send each message to its To address; return (key, Outcome) in input order.

        A refusal of one message (5xx: failed, 4xx: retry) does not stop the others; a
        broken connection is opened again once, then the rest of the batch is retried later.
        """
        results: list[tuple[Any, Outcome]] = []
        conn: smtplib.SMTP | None = None
        broken: str | None = None
        reopened = False
        try:
            for key, message in messages:
                started = time.perf_counter()
                while True:
                    if broken is not None:
                        outcome = Outcome("retry", None, None, broken)
                        break
                    try:
                        if conn is None:
                            conn = self._connect()
                        outcome = self._send_one(conn, message)
                        break
                    except smtplib.SMTPAuthenticationError as e:
                        broken = f"SMTP sign-in refused: {e.smtp_code} {_text(e.smtp_error)}"
                    except CONNECTION_ERRORS + (smtplib.SMTPException,) as e:
                        conn = _drop(conn)
                        if reopened or isinstance(e, socket.timeout | ConnectionRefusedError):
                            broken = f"SMTP server unavailable: {_describe(e)}"
                        reopened = True  # the server may have closed an idle connection
                outcome.elapsed_ms = (time.perf_counter() - started) * 1000
                results.append((key, outcome))
        finally:
            if conn is not None:
                try:
                    conn.quit()
                except (smtplib.SMTPException, OSError):
                    conn.close()
        return results

    def _send_one(self, conn: smtplib.SMTP, message: Message) -> Outcome:
        to = parseaddr(message["To"])[1]
        try:
            data = message.as_bytes(policy=SMTP_POLICY)
            conn.sendmail(self.settings.envelope_from, [to], data)
        except smtplib.SMTPRecipientsRefused as e:
            code, text = e.recipients.get(to, (550, b"refused"))
            return _refused(code, text)
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as e:
            return _refused(e.smtp_code, e.smtp_error)
        return Outcome("delivered", 250)


def _refused(code: int, text: bytes | str) -> Outcome:
    reason = f"SMTP {code}: {_text(text)}"[:300]
    return Outcome("failed" if code >= 500 else "retry", code, None, reason)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:200]


def _drop(conn: smtplib.SMTP | None) -> None:
    if conn is not None:
        conn.close()
    return None
