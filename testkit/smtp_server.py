"""A real SMTP server for tests and benchmarks: aiosmtpd in this process, on 127.0.0.1.

Every message is parsed with the standard library's `email` package and kept:

    with SmtpServer() as smtp:
        ... the app sends to 127.0.0.1:smtp.port ...
        message = smtp.wait_for(1)[0].message
        assert message["Subject"] == "..."

`SmtpProcess` runs one in a child process for benchmarks. `refuse` scripts answers to RCPT TO by address (e.g. {"gone@x.net": "550 5.1.1 no such
user"}); `auth` = (user, password) requires AUTH LOGIN/PLAIN (over the plain connection, or
over TLS with `tls`). `tls` = ("starttls" or "tls", testkit.certs.Certificates): STARTTLS
required before anything else, or TLS from the first byte (SMTPS).
"""

import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    tls: bool = False  # the message came over an encrypted connection
    login: str | None = None  # the SMTP user that signed in to send it

    @property
    def message(self) -> EmailMessage:
        """The message parsed with the standard library (on first use: benchmarks skip it)."""
        if not hasattr(self, "_parsed"):
            self._parsed = BytesParser(policy=policy.default).parsebytes(self.raw)
        return self._parsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpServer:
    def __init__(
        self,
        refuse: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        tls: tuple[str, object] | None = None,
    ):
        self.refuse = refuse or {}
        self.auth = auth
        self.security = tls[0] if tls else "none"
        self.received: list[Received] = []
        self.keep = True  # False: count messages only (SmtpProcess)
        self.accepted = 0
        self.connections = 0  # EHLO/HELO greetings: one per connection (two with STARTTLS)
        self._changed = threading.Condition()
        self.port = free_port()
        kwargs = {}
        if auth is not None:
            kwargs = {
                "authenticator": self._authenticate,
                "auth_required": True,
                # With STARTTLS: sign-in only once encrypted. (aiosmtpd counts only STARTTLS as
                # TLS: with TLS from the start the connection is encrypted before AUTH anyway.)
                "auth_require_tls": self.security == "starttls",
            }
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls[1].cert, tls[1].key)
            if tls[0] == "starttls":
                kwargs |= {"tls_context": context, "require_starttls": True}
            else:
                kwargs["ssl_context"] = context
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)

    def _authenticate(self, server, session, envelope, mechanism, data) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and (
                data.login.decode(),
                data.password.decode(),
            )
            == self.auth
        )
        return AuthResult(success=ok, auth_data=data if ok else None)

    # aiosmtpd handler hooks -------------------------------------------------------------

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        session.host_name = hostname
        with self._changed:
            self.connections += 1
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):  # noqa: N802
        session.host_name = hostname
        with self._changed:
            self.connections += 1
        return f"250 {server.hostname}"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        answer = self.refuse.get(address.lower())
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        raw = envelope.original_content
        with self._changed:
            self.accepted += 1
            if self.keep:
                tls = server.transport.get_extra_info("ssl_object") is not None
                signed_in = session.auth_data
                login = signed_in.login.decode() if isinstance(signed_in, LoginPassword) else None
                self.received.append(
                    Received(envelope.mail_from, list(envelope.rcpt_tos), raw, tls, login)
                )
            self._changed.notify_all()
        return "250 Message accepted"

    # ------------------------------------------------------------------------------------

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Received]:
        """Wait until at least n messages arrived; return all of them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.received) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.received)} of {n} emails arrived")
                self._changed.wait(left)
            return list(self.received)

    def first(self, subject: str, timeout: float = 10.0) -> EmailMessage:
        """Wait for the first message with this subject; return it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for received in self.received:
                    if received.message["Subject"] == subject:
                        return received.message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no email with the subject {subject!r} arrived")
                self._changed.wait(left)

    def config(self) -> dict:
        """The app settings that send to this server."""
        return {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": self.port,
            "SMTP_SECURITY": self.security,
            "MAIL_FROM": "reminders@clinic-tests.net",
        } | ({"SMTP_USER": self.auth[0], "SMTP_PASSWORD": self.auth[1]} if self.auth else {})

    def __enter__(self) -> "SmtpServer":
        if self.auth is not None and self.security != "starttls":
            # AUTH over a plain connection: what a test of the sign-in needs, on loopback only
            # (aiosmtpd warns on each connection, on its own thread).
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
        self._controller.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._controller.stop()


class SmtpProcess:
    """An SmtpServer in its own process (benchmarks: no GIL shared with the sender).

    It keeps no messages; count() says how many it accepted.
    """

    auth = None
    security = "none"

    def __enter__(self) -> "SmtpProcess":
        self._process = subprocess.Popen(
            [sys.executable, "-m", "testkit.smtp_server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port = int(self._process.stdout.readline())
        return self

    def count(self) -> int:
        self._process.stdin.write("count\n")
        self._process.stdin.flush()
        return int(self._process.stdout.readline())

    def config(self) -> dict:
        return SmtpServer.config(self)

    @property
    def pid(self) -> int:
        """The server's process (its CPU time: testkit.bench.cpu_seconds)."""
        return self._process.pid

    def __exit__(self, *exc_info: object) -> None:
        self._process.stdin.close()  # the child exits when its stdin closes
        self._process.wait(timeout=10)


def main() -> None:
    """Child process: serve, print the port, answer "count" lines on stdin until it closes."""
    server = SmtpServer()
    server.keep = False
    with server:
        print(server.port, flush=True)
        for line in sys.stdin:
            if line.strip() == "count":
                print(server.accepted, flush=True)


if __name__ == "__main__":
    main()
