"""Text files as councils' systems save them: UTF-8 (with or without a BOM), UTF-16, Windows-1252.

The encoding is detected, never guessed silently: the caller gets its name to report.
"""

from __future__ import annotations

import codecs
from pathlib import Path

ENCODINGS = ("UTF-8", "UTF-8 with BOM", "UTF-16", "Windows-1252")


class EncodingError(ValueError):
    """Bytes that are none of the accepted encodings."""


def _by_head(head: bytes) -> tuple[str, str] | None:
    """(codec, name) when the first bytes settle it: a BOM, or UTF-16 without one."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", "UTF-8 with BOM"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "UTF-16"
    # UTF-16 without a BOM: ASCII text leaves every other byte NUL.
    if len(head) >= 4 and head[1::2].count(0) > len(head) // 4 and head[0::2].count(0) == 0:
        return "utf-16-le", "UTF-16"
    if len(head) >= 4 and head[0::2].count(0) > len(head) // 4 and head[1::2].count(0) == 0:
        return "utf-16-be", "UTF-16"
    return None


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, encoding name) for UTF-8 (BOM or not), UTF-16 (BOM, or NUL-padded) or Windows-1252.

    Raises EncodingError for bytes that are none of these (a binary file, for instance).
    """
    head = data[:4096]
    chosen = _by_head(head)
    if chosen is not None:
        return _strict(data, *chosen)
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    if b"\x00" in head:
        raise EncodingError("is not a text file (UTF-8, UTF-16 or Windows-1252)")
    return _strict(data, "cp1252", "Windows-1252")


def detect_encoding(path: Path, chunk: int = 1 << 20) -> tuple[str, str]:
    """(codec, encoding name) of a text file, chosen as :func:`decode_text` chooses, checked
    by decoding the file a chunk at a time, so a file of any size is never held whole.

    Raises EncodingError as decode_text does; OSError when the file cannot be read.
    """
    with path.open("rb") as fh:
        head = fh.read(4096)
    chosen = _by_head(head)
    if chosen is not None:
        _check_file(path, *chosen, chunk=chunk)
        return chosen
    try:
        _check_file(path, "utf-8", "UTF-8", chunk=chunk)
        return "utf-8", "UTF-8"
    except EncodingError:
        pass
    if b"\x00" in head:
        raise EncodingError("is not a text file (UTF-8, UTF-16 or Windows-1252)")
    _check_file(path, "cp1252", "Windows-1252", chunk=chunk)
    return "cp1252", "Windows-1252"


def _check_file(path: Path, codec: str, name: str, *, chunk: int) -> None:
    decoder = codecs.getincrementaldecoder(codec)("strict")
    offset = 0
    with path.open("rb") as fh:
        while True:
            data = fh.read(chunk)
            try:
                decoder.decode(data, final=not data)
            except UnicodeDecodeError as exc:
                raise EncodingError(f"is not valid {name} text ({exc.reason} at byte "
                                    f"{offset + exc.start})") from None
            if not data:
                return
            offset += len(data)


def _strict(data: bytes, codec: str, name: str) -> tuple[str, str]:
    try:
        return data.decode(codec), name
    except UnicodeDecodeError as exc:
        raise EncodingError(f"is not valid {name} text ({exc.reason} at byte {exc.start})"
                            ) from None
