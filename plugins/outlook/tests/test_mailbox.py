"""Reading the council's mailbox over IMAP, against a small loopback IMAP4rev1 server."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage

import pytest
from ehcbridge import NotConfigured
from ehcbridge.models import LONDON
from ehcbridge.testing import MemoryPluginStore, make_context
from ehcbridge_outlook.mailbox import read_mailbox
from ehcbridge_outlook.settings import OutlookSettings

NOW = datetime(2027, 2, 12, 9, 0, tzinfo=LONDON)


@dataclass
class Mailbox:
    """Messages (uid -> bytes) and which are seen; the LOGIN the server accepts."""

    messages: dict[int, bytes] = field(default_factory=dict)
    seen: set[int] = field(default_factory=set)
    user: str = "reviews"
    password: str = "mailbox-pass"
    logins: list[str] = field(default_factory=list)


def _server(box: Mailbox) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def send(self, line: bytes) -> None:
            self.wfile.write(line + b"\r\n")

        def handle(self) -> None:
            self.send(b"* OK [CAPABILITY IMAP4rev1] fake ready")
            while True:
                raw = self.rfile.readline()
                if not raw:
                    return
                tag, _, rest = raw.strip().partition(b" ")
                words = rest.split(b" ")
                command = words[0].upper()
                if command == b"CAPABILITY":
                    self.send(b"* CAPABILITY IMAP4rev1")
                elif command == b"LOGIN":
                    user, password = (w.strip(b'"').decode() for w in words[1:3])
                    box.logins.append(user)
                    if (user, password) != (box.user, box.password):
                        self.send(tag + b" NO [AUTHENTICATIONFAILED] Invalid credentials")
                        continue
                elif command == b"SELECT":
                    self.send(b"* %d EXISTS" % len(box.messages))
                    self.send(b"* FLAGS (\\Seen)")
                    self.send(tag + b" OK [READ-WRITE] SELECT completed")
                    continue
                elif command == b"UID" and words[1].upper() == b"SEARCH":
                    unseen = [str(u).encode() for u in sorted(box.messages) if u not in box.seen]
                    self.send(b"* SEARCH " + b" ".join(unseen) if unseen else b"* SEARCH")
                elif command == b"UID" and words[1].upper() == b"FETCH":
                    uid = int(words[2])
                    data = box.messages[uid]
                    self.wfile.write(b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (uid, uid, len(data))
                                     + data + b")\r\n")
                elif command == b"UID" and words[1].upper() == b"STORE":
                    box.seen.add(int(words[2]))
                    self.send(b"* %s FETCH (UID %s FLAGS (\\Seen))" % (words[2], words[2]))
                elif command == b"LOGOUT":
                    self.send(b"* BYE logging out")
                    self.send(tag + b" OK LOGOUT completed")
                    return
                else:
                    self.send(tag + b" BAD unknown command")
                    continue
                self.send(tag + b" OK done")

    return Handler


@pytest.fixture
def imap() -> Iterator[tuple[Mailbox, int]]:
    """The fake IMAP server on a free loopback port."""
    box = Mailbox()
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _server(box))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box, int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def _settings(port: int, password: str = "mailbox-pass") -> OutlookSettings:  # noqa: S107
    return OutlookSettings(imap_host="127.0.0.1", imap_port=port, imap_security="none",
                           imap_username="reviews", imap_password=password)


def _reply(uid: str, attendee: str, partstat: str) -> bytes:
    message = EmailMessage()
    message["From"] = attendee
    message["To"] = "reviews@council.example.gov.uk"
    message["Subject"] = "Accepted: EHCP annual review: SE (EHC-1)"
    message.set_content("Accepted")
    calendar = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\nMETHOD:REPLY\r\n"
                f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20270212T090000Z\r\nSEQUENCE:0\r\n"
                f"ATTENDEE;PARTSTAT={partstat}:mailto:{attendee}\r\nEND:VEVENT\r\n"
                "END:VCALENDAR\r\n")
    message.add_alternative(calendar, subtype="calendar", params={"method": "REPLY"})
    return message.as_bytes()


def _views(sender: str, in_reply_to: str, *, attach: bool = True) -> bytes:
    message = EmailMessage()
    message["From"] = f"SALT North <{sender}>"
    message["Subject"] = "Re: Advice requested"
    message["In-Reply-To"] = in_reply_to
    message.set_content("Our advice is attached.")
    if attach:
        message.add_attachment(b"%PDF-1.4 advice", maintype="application", subtype="pdf",
                               filename="salt-advice.pdf")
    return message.as_bytes()


def test_replies_update_rsvps_and_answers_with_files_become_views(
        imap: tuple[Mailbox, int]) -> None:
    box, port = imap
    store = MemoryPluginStore(plugin="outlook")
    store.set_state("rev:uid-meeting-1", {"case_id": "EHC-1"})
    store.set_state("notice:EHC-1/r1/notice/views_request/abc/email",
                    {"message_id": "<n1.notice@council.example.gov.uk>"})
    box.messages = {
        1: _reply("uid-meeting-1", "parent@example.net", "ACCEPTED"),
        2: _views("salt@nhs.example.net", "<n1.notice@council.example.gov.uk>"),
        3: _views("someone@example.net", "<unknown@elsewhere>"),  # not an answer to us
        4: _views("salt@nhs.example.net", "<n1.notice@council.example.gov.uk>", attach=False),
    }
    ctx = make_context("outlook", _settings(port), now=NOW, store=store)
    report = read_mailbox(ctx, _settings(port))
    assert (report.read, report.responses, report.views, report.left) == (4, 1, 1, 2)
    assert store.responses == {("EHC-1", "parent@example.net"): "accepted"}
    assert store.views_received == [("EHC-1", "salt@nhs.example.net", NOW.date(),
                                     [("salt-advice.pdf", "application/pdf",
                                       b"%PDF-1.4 advice")])]
    assert box.seen == {1, 2}  # the others stay unread for people
    again = read_mailbox(ctx, _settings(port))
    assert (again.read, again.views) == (2, 0)
    assert len(store.views_received) == 1


def test_a_refused_login_is_retried_and_no_mailbox_means_not_configured(
        imap: tuple[Mailbox, int]) -> None:
    from ehcbridge import RetryLater

    _box, port = imap
    ctx = make_context("outlook", _settings(port, "wrong"), now=NOW)
    with pytest.raises(RetryLater, match=r"IMAP 127\.0\.0\.1"):
        read_mailbox(ctx, _settings(port, "wrong"))
    with pytest.raises(NotConfigured, match="imap_host is not set"):
        read_mailbox(ctx, OutlookSettings())




def test_the_mailbox_job_is_quiet_without_a_mailbox() -> None:
    import ehcbridge_outlook

    jobs: list[tuple[str, str, object]] = []
    ehcbridge_outlook.register_schedules(lambda name, cron, func: jobs.append((name, cron, func)))
    job = dict((name, func) for name, _cron, func in jobs)["outlook-mailbox"]
    job(make_context("outlook", OutlookSettings(), now=NOW))  # no imap_host: nothing happens
