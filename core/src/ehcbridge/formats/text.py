"""Text files as councils' systems save them: UTF-8 (with or without a BOM), UTF-16, Windows-1252.

The encoding is detected, never guessed silently: the caller gets its name to report.
"""

from __future__ import annotations

import codecs

ENCODINGS = ("UTF-8", "UTF-8 with BOM", "UTF-16", "Windows-1252")


class EncodingError(ValueError):
    """Bytes that are none of the accepted encodings."""


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, encoding name) for UTF-8 (BOM or not), UTF-16 (BOM, or NUL-padded) or Windows-1252.

    Raises EncodingError for bytes that are none of these (a binary file, for instance).
    """
    if data.startswith(codecs.BOM_UTF8):
        return _strict(data[3:], "utf-8", "UTF-8 with BOM")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _strict(data, "utf-16", "UTF-16")
    head = data[:4096]
    # UTF-16 without a BOM: ASCII text leaves every other byte NUL.
    if len(head) >= 4 and head[1::2].count(0) > len(head) // 4 and head[0::2].count(0) == 0:
        return _strict(data, "utf-16-le", "UTF-16")
    if len(head) >= 4 and head[0::2].count(0) > len(head) // 4 and head[1::2].count(0) == 0:
        return _strict(data, "utf-16-be", "UTF-16")
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    if b"\x00" in head:
        raise EncodingError("is not a text file (UTF-8, UTF-16 or Windows-1252)")
    return _strict(data, "cp1252", "Windows-1252")


def _strict(data: bytes, codec: str, name: str) -> tuple[str, str]:
    try:
        return data.decode(codec), name
    except UnicodeDecodeError as exc:
        raise EncodingError(f"is not valid {name} text ({exc.reason} at byte {exc.start})"
                            ) from None
