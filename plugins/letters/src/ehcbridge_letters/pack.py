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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
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
    name = f"{len(entries) + 1:03d}-{ident}.pdf"
    _write(day_folder(settings, day) / name, data)
    entries.append({"id": ident, "file": name, "to": notice.recipient.label,
                    "case_id": notice.case_id, "kind": notice.kind.replace("_", " "),
                    "pages": len(PdfReader(io.BytesIO(data)).pages)})
    _write(day_folder(settings, day) / "manifest.json",
           json.dumps(entries, indent=1).encode("utf-8"))
    return build_pack(settings, day), True


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
