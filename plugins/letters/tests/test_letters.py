"""Letters: a notice becomes an A4 letter in the day's print pack, once, readable as text."""

from __future__ import annotations

import io
from datetime import date, datetime
from pathlib import Path

import ehcbridge_letters
import pytest
from click.testing import CliRunner
from ehcbridge import PermanentError
from ehcbridge.models import LONDON
from ehcbridge.notices import Attachment, Notice, NoticeContact, NoticeRecipient
from ehcbridge.testing import make_context
from ehcbridge_letters.pack import build_pack, manifest
from ehcbridge_letters.render import latin1
from ehcbridge_letters.settings import LettersSettings
from pypdf import PdfReader

DAY = datetime(2027, 1, 27, 9, 0, tzinfo=LONDON)


def _notice(key: str = "EHC-1/r1/notice/views_request/abc/letter", **extra: object) -> Notice:
    values: dict[str, object] = dict(
        key=key, kind="views_request", channel="letter",
        recipient=NoticeRecipient(role="parent", name="Ms R Example", professional=False,
                                  address=("12 Mill Lane", "Oakfield", "OK1 2AB")),
        subject="Your views for the annual review of Sam\u2019s EHC plan",
        paragraphs=("Please send your views by Wednesday 24 February 2027 \u2013 thank you.",),
        questions=("What is working well?",),
        contacts=(NoticeContact(name="SENDIASS", detail="01234 567890"),),
        sender="Oakshire County Council SEN Team", sender_address=("County Hall", "OK1 1AA"),
        case_id="EHC-1")
    values.update(extra)
    return Notice.model_validate(values)


def _pdf(text: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(0, 10, text)
    return bytes(pdf.output())


def _text(path: Path) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(path.read_bytes())).pages)


def test_a_letter_lands_in_the_day_pack_once_with_its_cover_sheet(tmp_path: Path) -> None:
    settings = LettersSettings(folder=tmp_path)
    ctx = make_context("letters", settings, now=DAY)
    receipt = ehcbridge_letters.deliver_notice(notice=_notice(), ctx=ctx)
    assert receipt.reference == "print-pack-2027-01-27.pdf"
    again = ehcbridge_letters.deliver_notice(notice=_notice(), ctx=ctx)  # a retry
    assert again.reference == receipt.reference
    other = _notice(key="EHC-2/r5/notice/views_request/def/letter",
                    recipient=NoticeRecipient(role="parent", name="Mr T Other",
                                              address=("3 Bridge St", "OK2 3CD")),
                    case_id="EHC-2")
    ehcbridge_letters.deliver_notice(notice=other, ctx=ctx)
    pack = tmp_path / "print-pack-2027-01-27.pdf"
    reader = PdfReader(pack)
    cover = reader.pages[0].extract_text()
    assert "Print pack for 27 January 2027" in cover and "2 letter(s), 2 page(s)" in cover
    assert "Ms R Example" in cover and "EHC-1" in cover and "Mr T Other" in cover
    text = _text(pack)
    assert "12 Mill Lane" in text and "OK1 2AB" in text and "County Hall" in text
    assert "Sam's EHC plan" in text  # typographic quote printed plainly
    assert "2027 - thank you" in text and "1. What is working well?" in text
    assert "SENDIASS: 01234 567890" in text and "Our reference: EHC-1" in text
    assert [e["case_id"] for e in manifest(settings, date(2027, 1, 27))] == ["EHC-1", "EHC-2"]


def test_pdf_enclosures_follow_their_letter_and_others_are_listed(tmp_path: Path) -> None:
    settings = LettersSettings(folder=tmp_path)
    notice = _notice(attachments=(
        Attachment.inline("salt-advice.pdf", _pdf("SALT advice for the review"),
                          "application/pdf"),
        Attachment.inline("notes.docx", b"PK\x03\x04", "application/vnd.openxmlformats")))
    ehcbridge_letters.deliver_notice(notice=notice, ctx=make_context("letters", settings,
                                                                      now=DAY))
    text = _text(tmp_path / "print-pack-2027-01-27.pdf")
    assert "- salt-advice.pdf" in text
    assert "notes.docx (sent separately)" in text
    assert "SALT advice for the review" in text


def test_large_print_uses_bigger_type(tmp_path: Path) -> None:
    sizes = {}
    for large in (False, True):
        settings = LettersSettings(folder=tmp_path / str(large), large_print=large)
        ehcbridge_letters.deliver_notice(notice=_notice(paragraphs=("word " * 900,)),
                                         ctx=make_context("letters", settings, now=DAY))
        sizes[large] = len(PdfReader(tmp_path / str(large) / "print-pack-2027-01-27.pdf").pages)
    assert sizes[True] > sizes[False]


def test_a_letter_needs_an_address_and_email_is_not_its_business(tmp_path: Path) -> None:
    ctx = make_context("letters", LettersSettings(folder=tmp_path), now=DAY)
    with pytest.raises(PermanentError, match="no postal address"):
        ehcbridge_letters.deliver_notice(
            notice=_notice(recipient=NoticeRecipient(role="parent", name="X")), ctx=ctx)
    assert ehcbridge_letters.deliver_notice(notice=_notice(channel="email"), ctx=ctx) is None
    assert not list(tmp_path.glob("*.pdf"))


def test_latin1_keeps_accents_and_plain_forms() -> None:
    assert latin1("Zo\u00eb \u201cquoted\u201d \u2014 \u20ac") == 'Zo\u00eb "quoted" - ?'


def test_letters_pack_command_rebuilds_a_day(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    settings = LettersSettings(folder=tmp_path / "letters")
    ehcbridge_letters.deliver_notice(notice=_notice(), ctx=make_context("letters", settings,
                                                                         now=DAY))
    pack = tmp_path / "letters" / "print-pack-2027-01-27.pdf"
    pack.unlink()
    (tmp_path / "ehcbridge.toml").write_text(
        f'[store]\nurl = "sqlite:///{(tmp_path / "db.sqlite3").as_posix()}"\n'
        '[plugins.letters]\nfolder = "letters"\n')
    monkeypatch.chdir(tmp_path)  # ./ehcbridge.toml is the settings file
    from ehcbridge_letters.cli import letters

    result = CliRunner().invoke(letters, ["pack", "--date", "2027-01-27"])
    assert result.exit_code == 0, result.output
    assert "1 letter(s) for 27 Jan 2027" in result.output and pack.exists()
    result = CliRunner().invoke(letters, ["pack", "--date", "2027-01-28"])
    assert result.exit_code == 1 and "no letters for 28 Jan 2027" in result.output
    assert build_pack(settings, date(2027, 1, 27)) == pack


def test_check_reports_the_folder(tmp_path: Path) -> None:
    result = ehcbridge_letters.check(ctx=make_context("letters", LettersSettings(
        folder=tmp_path, large_print=True), now=DAY))
    assert result.status == "ok" and "(large print)" in result.detail


def test_letters_are_private_and_erased_cases_leave_the_packs(tmp_path: Path) -> None:
    settings = LettersSettings(folder=tmp_path / "letters")
    ctx = make_context("letters", settings, now=DAY)
    ehcbridge_letters.deliver_notice(notice=_notice(), ctx=ctx)
    other = _notice(key="EHC-2/r5/notice/views_request/def/letter", case_id="EHC-2",
                    recipient=NoticeRecipient(role="parent", name="Mr T Other",
                                              address=("3 Bridge St", "OK2 3CD")))
    ehcbridge_letters.deliver_notice(notice=other, ctx=ctx)
    day = tmp_path / "letters" / "2027-01-27"
    written = [tmp_path / "letters", day, *day.iterdir(), *(tmp_path / "letters").glob("*.pdf")]
    assert {oct(p.stat().st_mode & 0o777) for p in written if p.is_dir()} == {"0o700"}
    assert {oct(p.stat().st_mode & 0o777) for p in written if p.is_file()} == {"0o600"}

    ehcbridge_letters.forget_cases(case_ids=["EHC-1"], ctx=ctx)
    assert [e["case_id"] for e in manifest(settings, date(2027, 1, 27))] == ["EHC-2"]
    cover = _text(tmp_path / "letters" / "print-pack-2027-01-27.pdf")
    assert "1 letter(s)" in cover and "Mr T Other" in cover and "Ms R Example" not in cover
    assert len(list(day.glob("*.pdf"))) == 1
    ehcbridge_letters.forget_cases(case_ids=["EHC-2", "EHC-1"], ctx=ctx)  # safe to run again
    assert not day.exists() and not list((tmp_path / "letters").iterdir())
