"""Hostile XML (entity expansion, external entities and DTDs, XInclude) is refused by every
reader quickly, with the reader's own error naming the file, and nothing is ever fetched."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# Every XML reader in ehcbridge and its plugins, as "module:function" and "module:Error" (the
# exception it raises for a refused file). A new reader is one line here.
XML_READERS = [
    pytest.param("ehcbridge_sims.ctf:read_ctf", "ehcbridge_sims.ctf:CtfError", id="sims-ctf"),
]

MARKER = "SECRET-FILE-CONTENT-7c1d"


def _attacks(marker: Path, origin: str) -> dict[str, str]:
    laughs = "".join(f'<!ENTITY l{n} "{("&l" + str(n - 1) + ";") * 10}">' for n in range(1, 10))
    return {
        "billion-laughs": (f'<?xml version="1.0"?><!DOCTYPE CTfile [<!ENTITY l0 "lol">{laughs}]>'
                           "<CTfile><Header>&l9;</Header></CTfile>"),
        "quadratic-blowup": ('<?xml version="1.0"?><!DOCTYPE CTfile [<!ENTITY a "'
                             + "x" * 50_000 + '">]><CTfile><Header>' + "&a;" * 2_000
                             + "</Header></CTfile>"),
        "xxe-file": (f'<?xml version="1.0"?><!DOCTYPE CTfile [<!ENTITY e SYSTEM '
                     f'"file://{marker}">]><CTfile><Header>&e;</Header></CTfile>'),
        "xxe-http": (f'<?xml version="1.0"?><!DOCTYPE CTfile [<!ENTITY e SYSTEM '
                     f'"{origin}/entity">]><CTfile><Header>&e;</Header></CTfile>'),
        "external-dtd": (f'<?xml version="1.0"?><!DOCTYPE CTfile SYSTEM "{origin}/evil.dtd">'
                         "<CTfile><Header/></CTfile>"),
        "parameter-entity": (f'<?xml version="1.0"?><!DOCTYPE CTfile [<!ENTITY % p SYSTEM '
                             f'"{origin}/p.dtd"> %p;]><CTfile><Header/></CTfile>'),
        "xinclude": ('<?xml version="1.0"?><CTfile xmlns:xi="http://www.w3.org/2001/XInclude">'
                     f'<xi:include href="file://{marker}" parse="text"/>'
                     f'<xi:include href="{origin}/inc.xml"/></CTfile>'),
    }


ATTACKS = list(_attacks(Path("/m"), "http://h"))


@pytest.fixture
def listener(loopback: Any) -> tuple[str, list[str]]:
    """A loopback server recording every request: an attack that fetches anything shows here."""
    server = loopback(f'<!ENTITY leak "{MARKER}">'.encode())
    return server.origin, server.hits


def _load(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize(("reader_ref", "error_ref"), XML_READERS)
def test_hostile_xml_is_refused_and_nothing_is_fetched(
        tmp_path: Path, listener: tuple[str, list[str]], reader_ref: str, error_ref: str,
        attack: str) -> None:
    reader: Callable[[Path], Any] = _load(reader_ref)
    error: type[Exception] = _load(error_ref)
    origin, hits = listener
    marker = tmp_path / "marker.txt"
    marker.write_text(MARKER)
    path = tmp_path / f"{attack}.xml"
    path.write_text(_attacks(marker, origin)[attack])
    started = time.perf_counter()
    with pytest.raises(error) as refused:
        reader(path)
    assert time.perf_counter() - started < 5.0, "an attack was expanded before it was refused"
    message = str(refused.value)
    assert path.name in message, message  # names the file
    assert "nothing was imported" in message
    assert MARKER not in message
    assert hits == [], f"{attack} made the reader fetch {hits}"


def test_hostile_ctf_through_the_cli_is_one_clear_line(sqlite_cli: Any, tmp_path: Path,
                                                       listener: tuple[str, list[str]]) -> None:
    origin, hits = listener
    marker = tmp_path / "marker.txt"
    marker.write_text(MARKER)
    path = tmp_path / "pupils.xml"
    path.write_text(_attacks(marker, origin)["xxe-file"])
    result = sqlite_cli("sims", "sync", "--file", str(path))
    shown = result.stdout + result.stderr
    assert result.returncode == 1, shown
    assert "Traceback" not in shown and MARKER not in shown
    assert "declares a DTD" in shown and hits == []
