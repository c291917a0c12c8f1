"""docs/notices.md shows every default template as shipped and every [notices] setting."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ehcbridge.notices.settings import KINDS, NoticeSettings

REPO = Path(__file__).resolve().parents[1]


def test_every_default_template_is_in_the_guide_word_for_word() -> None:
    doc = (REPO / "docs" / "notices.md").read_text()
    folder = resources.files("ehcbridge.notices").joinpath("templates")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".j2"))
    assert names == sorted([f"{k}.j2" for k in KINDS] + ["_layout.j2"])
    for name in names:
        source = folder.joinpath(name).read_text("utf-8").rstrip()
        assert f"### `{name}`\n\n```jinja\n{source}\n```" in doc, \
            f"docs/notices.md does not show {name} as shipped"


def test_every_notices_setting_is_documented_and_in_the_examples() -> None:
    doc = (REPO / "docs" / "notices.md").read_text()
    example = (REPO / "config" / "ehcbridge.example.toml").read_text()
    env = (REPO / "config" / ".env.example").read_text()
    for name in NoticeSettings.model_fields:
        assert f"| `{name}` |" in doc, name
        assert f"{name} =" in example, name
        assert f"EHCBRIDGE_NOTICES__{name.upper()}=" in env, name
