"""``ehcbridge social-care import`` and ``list`` through click, over a memory store."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from ehcbridge.events import HookContext
from ehcbridge.testing import ContextApp
from ehcbridge_social_care import cli as cli_module
from ehcbridge_social_care import register_commands

from .conftest import UPN_A, UPN_NO_REVIEW, CountingStore, context


@pytest.fixture
def root(monkeypatch: pytest.MonkeyPatch, ctx: HookContext) -> click.Group:
    monkeypatch.setattr("ehcbridge.invocation.current_app", lambda: ContextApp(ctx))

    @click.group()
    def ehcbridge() -> None:
        """Stand-in for the core CLI."""

    register_commands(cli=ehcbridge)
    return ehcbridge


def test_import_prints_counts_and_unmatched_rows(tmp_path: Path, root: click.Group,
                                                 store: CountingStore) -> None:
    path = tmp_path / "x.csv"
    path.write_text("upn,review_type,review_date,team\n"
                    f"{UPN_A},cla,2027-03-12,North\n{UPN_NO_REVIEW},cp,2027-01-05,North\n")
    result = CliRunner().invoke(root, ["social-care", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{path} (generic): 2 read, 1 matched, 1 unmatched, 0 skipped as invalid",
        "stored dates for 1 pupil(s); added 1 social care invitee(s)",
        "unmatched row 3: no open EHCP review for this UPN",
    ]
    assert len(store.invitees["EHC-A"]) == 1


def test_dry_run_says_so(tmp_path: Path, root: click.Group, store: CountingStore) -> None:
    path = tmp_path / "x.csv"
    path.write_text(f"upn,review_type,review_date\n{UPN_A},cla,2027-03-12\n")
    result = CliRunner().invoke(root, ["social-care", "import", str(path), "--dry-run"])
    assert result.exit_code == 0
    assert "would store dates for 1 pupil(s)" in result.output
    assert result.output.rstrip().endswith("dry run: nothing was written")
    assert store.state == {}


def test_refused_file_exits_1_and_lists_problems(tmp_path: Path, root: click.Group,
                                                 store: CountingStore) -> None:
    path = tmp_path / "x.csv"
    path.write_text(f"upn,review_type,review_date\n{UPN_A},cla,31-02-2027\n")
    result = CliRunner().invoke(root, ["social-care", "import", str(path)])
    assert result.exit_code == 1
    assert f"{path} row 2, column review_date: '31-02-2027' is not a date" in result.output
    assert "nothing was imported" in result.output
    assert store.state == {}
    unknown = tmp_path / "y.csv"
    unknown.write_text("a,b\n1,2\n")
    result = CliRunner().invoke(root, ["social-care", "import", str(unknown)])
    assert result.exit_code == 1 and "use --layout" in result.output
    result = CliRunner().invoke(root, ["social-care", "import", str(tmp_path / "none.csv")])
    assert result.exit_code == 1 and "cannot read" in result.output


def test_list(tmp_path: Path, root: click.Group, store: CountingStore) -> None:
    result = CliRunner().invoke(root, ["social-care", "list"])
    assert result.output.strip() == "No social care review dates."
    path = tmp_path / "x.csv"
    path.write_text(f"upn,review_type,review_date,team\n{UPN_A},cla,2026-09-15,North CLA\n")
    CliRunner().invoke(root, ["social-care", "import", str(path)])
    result = CliRunner().invoke(root, ["social-care", "list", "--upn", UPN_A.lower()])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == f"{UPN_A}  15 Sep 2026  CLA review            known  [North CLA]"
    assert lines[1].startswith(f"{UPN_A}  15 Mar 2027  CLA review            projected: 6 months")
    assert len(lines) == 3
    bad = CliRunner().invoke(root, ["social-care", "list", "--upn", "nope"])
    assert bad.exit_code == 2 and "not a valid UPN" in bad.output


def test_plugin_context_comes_from_the_app(store: CountingStore) -> None:
    class FakeApp:
        def plugin_context(self, name: str) -> HookContext:
            assert name == "social_care"
            return context(store)

    listed = CliRunner().invoke(cli_module.social_care, ["list"], obj=FakeApp())
    assert listed.exit_code == 0, listed.output
