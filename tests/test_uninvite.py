"""Someone who should no longer be invited: removed by a caseworker, or replaced by a later list
(the child changed school). Through the real CLI with the outlook plugin writing its outbox:
the one removed is sent a cancellation, the newcomer an invitation, everyone else nothing."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ehcbridge.cli import cli

HEADER = ("case_id,upn,forename,surname,dob,nc_year,school_urn,plan_issued,last_review,"
          "coordinator_email,parent_email,setting_email\n")
ROW = ("EHC-A,Q999000000011,Alex,One,2014-03-02,7,100001,2026-04-01,,"
       "officer@la.example.gov.uk,a.parent@example.net,{setting}\n")


class Council:
    """Runs ``ehcbridge`` as a caseworker would, against one settings file."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.tmp = tmp_path
        self.outbox = tmp_path / "outbox"
        self.config = tmp_path / "ehcbridge.toml"
        self.config.write_text(
            f'[store]\nurl = "{url}"\n\n'
            f'[plugins.outlook]\ntransport = "outbox"\noutbox_dir = "{self.outbox.as_posix()}"\n',
            encoding="utf-8")
        self.seen: set[str] = set()
        self.last_body = ""

    def __call__(self, *args: str, ok: bool = True) -> Any:
        result = CliRunner().invoke(cli, ["--config", str(self.config), *args],
                                    env={"EHCBRIDGE_LOAD_PLUGINS": "outlook"})
        if ok:
            assert result.exit_code == 0, (args, result.output, result.exception)
        return result

    def import_list(self, setting: str) -> str:
        path = self.tmp / "reviews.csv"
        path.write_text(HEADER + ROW.format(setting=setting), encoding="utf-8")
        return str(self("import", "reviews", str(path), "--now", "2027-01-04T09:00").output)

    def new_messages(self, when: str) -> list[tuple[str, str, str]]:
        """(To, iTIP method, body text) of what this engine run sent."""
        self("run", "--once", "--now", f"{when}T18:00")
        out = []
        for path in sorted(self.outbox.glob("*.eml")):
            if path.name in self.seen:
                continue
            self.seen.add(path.name)
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            method = next((str(p.get_param("method")) for p in message.walk()
                           if p.get_content_type() == "text/calendar"), "")
            body = message.get_body(preferencelist=("plain",))
            self.last_body = body.get_content() if body is not None else ""
            out.append((message["To"].addresses[0].addr_spec, method, self.last_body))
        return sorted(out)


def test_a_school_move_and_a_wrong_address_withdraw_invitations(tmp_path: Path,
                                                               store_url: str) -> None:
    ehc = Council(tmp_path, store_url)
    ehc.import_list("senco@old-school.example.org")
    ehc("review", "--now", "2027-01-04T09:00", "schedule", "EHC-A",
        "--start", "2027-03-10T10:00", "--location", "Room 4")
    first = ehc.new_messages("2027-01-04")
    assert [(to, m) for to, m, _ in first] == [("a.parent@example.net", "REQUEST"),
                                               ("senco@old-school.example.org", "REQUEST")]

    # The child moved school: the Hub's next list names the new SENCO.
    out = ehc.import_list("senco@new-school.example.org")
    assert "1 invitee(s) an earlier list named were replaced" in out
    second = ehc.new_messages("2027-01-11")
    assert [(to, m) for to, m, _ in second] == [("senco@new-school.example.org", "REQUEST"),
                                                ("senco@old-school.example.org", "CANCEL")]
    withdrawn = second[1][2]
    assert "no longer invited" in withdrawn and "goes ahead" in withdrawn
    shown = ehc("review", "--now", "2027-01-11T09:00", "show", "EHC-A").output
    assert "old-school" not in shown and "new-school" in shown
    # The same list again changes nothing and sends nothing.
    assert "replaced" not in ehc.import_list("senco@new-school.example.org")
    assert ehc.new_messages("2027-01-12") == []

    # A wrong parent address, corrected by hand: removed, and the right one invited (the same
    # number of invitees as before, which must still reach the calendar plugins).
    removed = ehc("review", "--now", "2027-01-13T09:00", "uninvite", "EHC-A",
                  "--email", "A.Parent@example.net").output
    assert "1 invitee(s) removed (parent)" in removed
    ehc("review", "--now", "2027-01-13T09:00", "invite", "EHC-A", "--role", "parent",
        "--email", "a.carer@example.net")
    third = ehc.new_messages("2027-01-13")
    assert [(to, m) for to, m, _ in third] == [("a.carer@example.net", "REQUEST"),
                                               ("a.parent@example.net", "CANCEL")]

    # Nobody by that address: a clear error, nothing changed, no traceback.
    wrong = ehc("review", "uninvite", "EHC-A", "--email", "nobody@example.net", ok=False)
    assert wrong.exit_code == 1 and "Traceback" not in wrong.output
    assert "EHC-A: no invitee with that email is invited" in wrong.output
    both = ehc("review", "uninvite", "EHC-A", ok=False)
    assert both.exit_code == 2 and "give --email, or --name" in both.output


@pytest.mark.parametrize("column", ["parent_email", "setting_email"])
def test_a_list_without_the_column_keeps_who_was_invited(tmp_path: Path, column: str) -> None:
    """A list that names nobody for a role (an empty cell) leaves that role's invitees alone."""
    ehc = Council(tmp_path, f"sqlite:///{(tmp_path / 's.sqlite3').as_posix()}")
    ehc.import_list("senco@old-school.example.org")
    path = tmp_path / "reviews.csv"
    row = ROW.format(setting="senco@old-school.example.org")
    cells = dict(zip(HEADER.strip().split(","), row.strip().split(","), strict=True))
    cells[column] = ""
    path.write_text(HEADER + ",".join(cells.values()) + "\n", encoding="utf-8")
    assert "replaced" not in ehc("import", "reviews", str(path), "--now", "2027-01-05T09:00").output
    shown = ehc("review", "--now", "2027-01-05T09:00", "show", "EHC-A").output
    assert "old-school" in shown and "a.parent@example.net" in shown


def test_someone_removed_stays_removed_until_invited_again(tmp_path: Path, store_url: str) -> None:
    """The Hub's list lags: it still names the SENCO a caseworker removed. Importing it again
    does not bring them back, nor does next year's review; `review invite` does."""
    ehc = Council(tmp_path, store_url)
    ehc.import_list("senco@old-school.example.org")
    ehc("review", "--now", "2027-01-04T09:00", "schedule", "EHC-A",
        "--start", "2027-03-10T10:00", "--location", "Room 4")
    ehc.new_messages("2027-01-04")
    ehc("review", "--now", "2027-01-05T09:00", "uninvite", "EHC-A",
        "--email", "senco@old-school.example.org")
    assert ehc.new_messages("2027-01-05") == [
        ("senco@old-school.example.org", "CANCEL", ehc.last_body)]
    out = ehc.import_list("senco@old-school.example.org")
    assert "0 added, 0 updated, 1 unchanged" in out
    assert ehc.new_messages("2027-01-06") == []
    shown = ehc("review", "--now", "2027-01-06T09:00", "show", "EHC-A").output
    assert "Removed (not invited again unless invited by hand with 'review invite'): " \
           "senco@old-school.example.org (setting)" in " ".join(shown.split())
    assert shown.count("old-school") == 1  # in that line only, not among the invitees

    # Next year's review starts without them too, whatever the list says.
    ehc("review", "--now", "2027-03-10T12:00", "held", "EHC-A")
    ehc("review", "--now", "2027-03-12T09:00", "decide", "EHC-A", "maintain",
        "--reason", "Needs met")
    ehc.import_list("senco@old-school.example.org")
    shown = ehc("review", "--now", "2027-03-12T09:00", "show", "EHC-A", "--json").output
    assert "old-school" not in str(json.loads(shown)["invitees"])
    assert "a.parent@example.net" in str(json.loads(shown)["invitees"])
    assert json.loads(shown)["removed"] == [{"email": "senco@old-school.example.org",
                                             "role": "setting"}]

    # Invited again by hand: the removal is lifted.
    ehc("review", "--now", "2027-03-12T09:00", "invite", "EHC-A", "--role", "setting",
        "--email", "senco@old-school.example.org")
    shown = json.loads(ehc("review", "--now", "2027-03-12T09:00", "show", "EHC-A",
                           "--json").output)
    assert "senco@old-school.example.org" in [i["email"] for i in shown["invitees"]]
    assert shown["removed"] == []


def test_a_plugin_adding_someone_removed_is_kept_out_until_invited_by_hand(
        tmp_path: Path, store_url: str) -> None:
    """The MIS still lists a parent the caseworker removed, and a routed professional's team
    mailbox is removed: a plugin adding either (through its store facade, as the MIS sync and
    the social care importer do) adds nobody; inviting the professional by the address they
    were named with brings both back."""
    from ehcbridge import transitions
    from ehcbridge.app import App, PluginStoreFacade
    from ehcbridge.models import Invitee, Role
    from ehcbridge.settings import load_settings

    ehc = Council(tmp_path, store_url)
    ehc.import_list("senco@school.example.org")
    app = App(load_settings(ehc.config))
    store = app.store
    store.add_invitee("EHC-A", Invitee(role=Role.HEALTH, name="SALT", email="salt@nhs.example",
                                       team="SALT", source="routed"),
                      routed_from="dr.salt@nhs.example")
    ehc("review", "--now", "2027-01-05T09:00", "uninvite", "EHC-A", "--email",
        "a.parent@example.net")
    ehc("review", "--now", "2027-01-05T09:00", "uninvite", "EHC-A", "--email",
        "salt@nhs.example")
    facade = PluginStoreFacade(store, "sims", app)
    facade.add_invitee("EHC-A", Invitee(role=Role.PARENT, email="A.Parent@example.net",
                                        source="mis"))
    facade.add_invitee("EHC-A", Invitee(role=Role.HEALTH, email="dr.salt@nhs.example"))
    emails = {i.email for i in store.case("EHC-A").invitees}
    assert emails == {"senco@school.example.org"}
    transitions.invite_again(store, "EHC-A", "dr.salt@nhs.example")
    assert store.removed_from("EHC-A") == [{"email": "a.parent@example.net", "role": "parent"}]
    app.close()
