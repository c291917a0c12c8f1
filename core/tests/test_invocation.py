"""The application of a command, and the context a plugin command gets, without import cycles."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from ehcbridge.cli import cli


def test_the_app_module_never_imports_the_cli() -> None:
    code = ("import sys, ehcbridge.app, ehcbridge.plugins, ehcbridge.plugin_settings\n"
            "print(sorted(m for m in ('ehcbridge.cli', 'ehcbridge.invocation') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_a_plugin_command_gets_its_settings_from_the_config_option(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("EHCBRIDGE_") and not name.startswith("EHCBRIDGE_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "ehcbridge.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{(tmp_path / "db.sqlite3").as_posix()}"\n\n'
                      '[plugins.zoom]\naccount_id = "acct"\nclient_id = "client"\n')
    # zoom's `meetings` command is decorated with pass_plugin_context and reads its settings
    # with settings_of: NotConfigured names exactly the keys the --config file lacks.
    result = CliRunner().invoke(cli, ["--config", str(config), "zoom", "meetings"])
    assert result.exit_code == 1
    assert result.output == ("Error: zoom: not configured ([plugins.zoom] needs: "
                             "client_secret, host)\n")
