"""As datasette does: every hook specification is exercised by at least one test.

A hook counts as exercised when some test module defines or calls an implementation of it
(``def on_decision(``, ``plugin.on_decision(``) or hands one to a test plugin
(``plugin_module("x", on_decision=...)``). A new hook without such a test fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ehcbridge import hookspecs

REPO = Path(__file__).resolve().parents[1]
SPECS = sorted(name for name, func in vars(hookspecs).items()
               if callable(func) and hasattr(func, "ehcbridge_spec"))


def _test_sources() -> str:
    files = [*REPO.glob("core/tests/**/test_*.py"), *REPO.glob("tests/test_*.py"),
             *REPO.glob("plugins/*/tests/test_*.py")]
    return "\n".join(p.read_text(encoding="utf-8") for p in files
                     if p.name not in {"test_docs.py", Path(__file__).name})


@pytest.mark.parametrize("hook", SPECS)
def test_every_hook_spec_is_exercised_by_a_test(hook: str) -> None:
    assert re.search(rf"\b{hook}(\(|=)", _test_sources()), (
        f"no test implements or calls the hook {hook}: add one (see docs/writing-plugins.md)")


def test_the_check_sees_the_specs() -> None:
    assert {"on_review_scheduled", "register_schedules", "lookup_pupil"} <= set(SPECS)
