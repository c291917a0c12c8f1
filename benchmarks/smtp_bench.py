"""Mail over SMTP with STARTTLS and a login: a connection per message against a lane's session.

A council's first run sends tens of thousands of invitations; each SMTP connection costs a TCP
and TLS handshake and a login before the message (over a real network to Exchange Online or
NHSmail, tens to hundreds of milliseconds more than here). Loopback aiosmtpd with a throwaway
CA, so the figure is the floor of what sharing saves. Issue 17: the first run after 20,000
plans sends about 41,700 messages.

Usage: uv run python benchmarks/smtp_bench.py [--messages N]
"""

from __future__ import annotations

import argparse
import socket
import ssl
import tempfile
import time
import warnings
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from ehcbridge import mail

PASSWORD = "bench-password"


class Counter:
    """Counts connections (greetings after STARTTLS) and messages."""

    def __init__(self) -> None:
        self.connections = 0
        self.messages = 0

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        """Count a connection once TLS is up (its second EHLO)."""
        if session.ssl is not None:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Accept."""
        self.messages += 1
        return "250 Accepted"


def _login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ehcbridge-smtp-bench-"))
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    handler = Counter()
    controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=server_ctx,
                            require_starttls=True, authenticator=_login, auth_required=True)
    controller.start()
    settings = mail.MailSettings(transport="smtp", smtp_host="127.0.0.1", smtp_port=port,
                                 smtp_security="starttls", smtp_username="bridge",
                                 smtp_password=PASSWORD,  # type: ignore[arg-type]
                                 ca_bundle=work / "ca.pem",
                                 from_address="reviews@council.example.gov.uk")

    def send_all() -> None:
        for n in range(args.messages):
            message = EmailMessage()
            message["To"] = f"invitee{n}@example.net"
            message["Subject"] = "Invitation: annual review"
            message.set_content("You are invited to the annual review meeting.\n" * 20)
            mail.send(message, settings)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            started = time.perf_counter()
            send_all()
            each = time.perf_counter() - started, handler.connections
            handler.connections = 0
            started = time.perf_counter()
            with mail.session():
                send_all()
            shared = time.perf_counter() - started, handler.connections
    finally:
        controller.stop()
    assert handler.messages == 2 * args.messages
    for label, (seconds, connections) in (("a connection per message (before)", each),
                                          ("a lane's session (now)", shared)):
        print(f"{label}: {args.messages} messages in {seconds:.2f} s = "
              f"{seconds / args.messages * 1000:.2f} ms each; {connections} connections")
    print(f"speed-up: {each[0] / shared[0]:.1f}x; at this rate 41,724 messages take "
          f"{each[0] / args.messages * 41_724:.0f} s before, "
          f"{shared[0] / args.messages * 41_724:.0f} s now (loopback: no network latency)")


if __name__ == "__main__":
    main()
