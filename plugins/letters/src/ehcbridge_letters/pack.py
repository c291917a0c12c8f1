"""Each day's letters and its print pack: one PDF, a cover sheet listing the letters.

Layout of the folder (all written atomically, so a crash never leaves half a file)::

    <folder>/<YYYY-MM-DD>/manifest.json      the day's letters, in order
    <folder>/<YYYY-MM-DD>/<NNN>-<id>.pdf      one letter (with its PDF enclosures)
    <folder>/print-pack-<YYYY-MM-DD>.pdf      cover sheet + every letter of the day
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import date
from pathlib import Path
from typing import Any

from ehcbridge.notices import Notice

from ehcbridge_letters.render import cover_pdf, letter_pdf
from ehcbridge_letters.settings import LettersSettings


def _write(path: Path, data: bytes) -> None:
    from ehcbridge.operations import create_private_file

    # Letters carry a family's address and a child's first name: the folders are made 0700
    # and each file 0600, as the core does for its database and the mail outbox.
    tmp = path.with_name(path.name + ".tmp")
    create_private_file(tmp)
    tmp.write_bytes(data)
    tmp.replace(path)


def day_folder(settings: LettersSettings, day: date) -> Path:
    """Where one day's letters are kept."""
    return Path(settings.folder) / day.isoformat()


def pack_path(settings: LettersSettings, day: date) -> Path:
    """The day's print pack."""
    return Path(settings.folder) / f"print-pack-{day.isoformat()}.pdf"


def manifest(settings: LettersSettings, day: date) -> list[dict[str, Any]]:
    """The day's letters in order (empty when none)."""
    path = day_folder(settings, day) / "manifest.json"
    if not path.exists():
        return []
    entries: list[dict[str, Any]] = json.loads(path.read_text("utf-8"))
    return entries


def add_letter(settings: LettersSettings, notice: Notice, day: date) -> tuple[Path, bool]:
    """Write the letter for a notice into the day's folder (once per notice key) and rebuild
    the pack; returns the pack's path and whether the letter is new."""
    from pypdf import PdfReader

    entries = manifest(settings, day)
    ident = hashlib.sha256(notice.key.encode()).hexdigest()[:16]
    if any(e["id"] == ident for e in entries):
        return pack_path(settings, day), False
    data = letter_pdf(notice, day, font_size=settings.font_size,
                      large_print=settings.large_print, large_size=settings.large_print_size)
    # Numbered after the highest letter kept, not the count: once a letter has been taken out
    # (erased, or removed by hand) the count would reuse a number still on disk.
    name = f"{max((_number(e['file']) for e in entries), default=0) + 1:03d}-{ident}.pdf"
    _write(day_folder(settings, day) / name, data)
    entries.append({"id": ident, "file": name, "to": notice.recipient.label,
                    "case_id": notice.case_id, "kind": notice.kind.replace("_", " "),
                    "pages": len(PdfReader(io.BytesIO(data)).pages)})
    _write(day_folder(settings, day) / "manifest.json",
           json.dumps(entries, indent=1).encode("utf-8"))
    return build_pack(settings, day), True


def _number(file: str) -> int:
    head = file.partition("-")[0]
    return int(head) if head.isdigit() else 0


def _days(settings: LettersSettings) -> list[tuple[date, Path]]:
    """Each day folder of the plugin's folder, oldest first (other folders left alone)."""
    folder = Path(settings.folder)
    found = []
    for day_dir in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        try:
            found.append((date.fromisoformat(day_dir.name), day_dir))
        except ValueError:
            continue  # not one of the plugin's day folders
    return found


def letters_of(settings: LettersSettings, case_id: str) -> list[dict[str, Any]]:
    """Every letter kept for one case: its day, manifest entry and the PDF (base64)."""
    import base64

    found: list[dict[str, Any]] = []
    for day, day_dir in _days(settings):
        for entry in manifest(settings, day):
            if entry.get("case_id") == case_id:
                pdf = day_dir / entry["file"]
                found.append({"day": day.isoformat(), **entry, "pdf_base64": (
                    base64.b64encode(pdf.read_bytes()).decode("ascii") if pdf.exists() else None)})
    return found


def forget(settings: LettersSettings, case_ids: set[str]) -> int:
    """Delete the letters of ``case_ids`` from every day's folder and rebuild each day's pack
    from the letters left (a day left with none loses its folder and pack); returns how many
    letters were deleted."""
    deleted = 0
    for day, day_dir in _days(settings):
        entries = manifest(settings, day)
        keep = [e for e in entries if e.get("case_id") not in case_ids]
        if len(keep) == len(entries):
            continue
        for entry in entries:
            if entry not in keep:
                (day_dir / entry["file"]).unlink(missing_ok=True)
                deleted += 1
        if keep:
            _write(day_dir / "manifest.json", json.dumps(keep, indent=1).encode("utf-8"))
            build_pack(settings, day)
        else:
            # The manifest goes last: were this interrupted, a second run still finds the day.
            pack_path(settings, day).unlink(missing_ok=True)
            (day_dir / "manifest.json").unlink(missing_ok=True)
            if not any(day_dir.iterdir()):
                day_dir.rmdir()
    return deleted


def build_pack(settings: LettersSettings, day: date) -> Path:
    """(Re)build the day's print pack from its letters; returns its path."""
    from pypdf import PdfReader, PdfWriter

    entries = manifest(settings, day)
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(cover_pdf(day, entries, font_size=settings.font_size))))
    for entry in entries:
        writer.append(PdfReader(day_folder(settings, day) / entry["file"]))
    out = io.BytesIO()
    writer.write(out)
    target = pack_path(settings, day)
    _write(target, out.getvalue())
    return target


def letter_bytes(notice: Notice, settings: LettersSettings, day: date) -> bytes:
    """One notice's letter on its own (for services that post it, such as GOV.UK Notify)."""
    return bytes(letter_pdf(notice, day, font_size=settings.font_size,
                            large_print=settings.large_print,
                            large_size=settings.large_print_size))
