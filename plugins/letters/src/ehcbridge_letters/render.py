"""A notice as a printed letter (A4, address placed for a DL window envelope) with fpdf2."""

from __future__ import annotations

import io
import unicodedata
from datetime import date

from ehcbridge.notices import Notice

# fpdf2's built-in fonts are Latin-1; typographic characters are written as their plain forms.
_PLAIN = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                        "\u2013": "-", "\u2014": "-", "\u2026": "...", "\u00a0": " ",
                        "\u2022": "-"})


def latin1(text: str) -> str:
    """Text the PDF's core font can show: quotes and dashes made plain, accents kept."""
    text = unicodedata.normalize("NFC", text.translate(_PLAIN))
    return text.encode("latin-1", "replace").decode("latin-1")


def letter_pdf(notice: Notice, on: date, *, font_size: float = 11.0,
               large_print: bool = False, large_size: float = 16.0) -> bytes:
    """The letter for one notice, with PDF attachments appended as enclosures."""
    from fpdf import FPDF

    size = large_size if (large_print or notice.large_print) else font_size
    line = size * 0.5
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_margins(20, 20, 20)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin
    pdf.set_font("Helvetica", size=max(size - 1, 9))
    if notice.sender_address or notice.sender:  # the council, top right
        pdf.set_xy(pdf.w - 20 - 75, 15)
        pdf.multi_cell(75, line, latin1("\n".join((notice.sender, *notice.sender_address))),
                       align="R")
    # The recipient's address sits where a DL window envelope shows it (45 mm from the top).
    pdf.set_xy(25, 45)
    recipient = notice.recipient
    address = "\n".join(p for p in (recipient.name or "", *recipient.address) if p)
    pdf.set_font("Helvetica", size=size)
    pdf.multi_cell(85, line, latin1(address))
    pdf.set_xy(20, max(pdf.get_y() + 10, 95))
    pdf.cell(width, line, latin1(f"{on.day} {on:%B %Y}"), align="R",
             new_x="LMARGIN", new_y="NEXT")
    if notice.case_id:
        pdf.cell(width, line, latin1(f"Our reference: {notice.case_id}"),
                 new_x="LMARGIN", new_y="NEXT")
    pdf.ln(line)
    pdf.set_font("Helvetica", style="B", size=size)
    pdf.multi_cell(width, line, latin1(notice.subject), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(line / 2)
    pdf.set_font("Helvetica", size=size)
    for paragraph in _body(notice):
        if paragraph.startswith("\x00"):  # a heading
            pdf.set_font("Helvetica", style="B", size=size)
            pdf.multi_cell(width, line, latin1(paragraph[1:]), new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", size=size)
        else:
            pdf.multi_cell(width, line, latin1(paragraph), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(line / 2)
    body = bytes(pdf.output())
    enclosures = [a for a in notice.attachments
                  if a.content_type == "application/pdf" and a.data_b64 is not None]
    if not enclosures:
        return body
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(body)))
    for attachment in enclosures:
        writer.append(PdfReader(io.BytesIO(attachment.data)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _body(notice: Notice) -> list[str]:
    name = notice.recipient.name
    parts = [f"Dear {name}," if name else "Dear Sir or Madam,", *notice.paragraphs]
    if notice.questions:
        parts.append("\x00Please tell us:")
        parts += [f"{n}. {q}" for n, q in enumerate(notice.questions, 1)]
    if notice.dates:
        parts += [f"{d.label}: {d.date}" for d in notice.dates]
    if notice.contacts:
        parts.append("\x00Who to contact")
        parts += [f"{c.name}: {c.detail}" for c in notice.contacts]
    for link in notice.links:
        parts.append(f"Online: {link}")
    if notice.attachments:
        parts.append("\x00Enclosed")
        for a in notice.attachments:
            printed = a.content_type == "application/pdf" and a.data_b64 is not None
            parts.append(f"- {a.filename}" + ("" if printed else " (sent separately)"))
    parts += ["Yours sincerely,", notice.sender]
    return parts


def cover_pdf(day: date, entries: list[dict[str, object]], *, font_size: float = 11.0) -> bytes:
    """The print pack's cover sheet: one line per letter, in the order they follow."""
    from fpdf import FPDF

    pdf = FPDF(format="A4", unit="mm")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=font_size + 4)
    pdf.cell(0, 10, latin1(f"Print pack for {day.day} {day:%B %Y}"), new_x="LMARGIN",
             new_y="NEXT")
    pdf.set_font("Helvetica", size=font_size)
    total = sum(int(str(e["pages"])) for e in entries)
    pdf.cell(0, 7, latin1(f"{len(entries)} letter(s), {total} page(s) after this sheet. "
                          "Post each letter to the address shown in its window."),
             new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Helvetica", style="B", size=font_size)
    widths = (10, 60, 30, 45, 20)
    for text, w in zip(("#", "To", "Reference", "Letter", "Pages"), widths, strict=True):
        pdf.cell(w, 7, text, border="B")
    pdf.ln()
    pdf.set_font("Helvetica", size=font_size)
    for n, e in enumerate(entries, 1):
        row = (str(n), str(e["to"])[:34], str(e["case_id"] or ""), str(e["kind"]),
               str(e["pages"]))
        for text, w in zip(row, widths, strict=True):
            pdf.cell(w, 7, latin1(text))
        pdf.ln()
    return bytes(pdf.output())
