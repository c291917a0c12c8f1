"""Wording: Jinja2 templates shipped with the package, each replaceable by a council's file."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import FunctionLoader, StrictUndefined, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from ehcbridge.notices.settings import NoticeSettings

DEFAULT_PREFIX = "default/"
_SECTION = re.compile(r"^@@(subject|body|questions)\s*$", re.M)


class TemplateProblem(ValueError):
    """A notice template cannot be read or rendered (named file, kind and reason)."""


def default_source(name: str) -> str:
    """The text of a template shipped with ehcbridge."""
    return resources.files("ehcbridge.notices").joinpath("templates", name).read_text("utf-8")


def environment(settings: NoticeSettings, config_dir: Path | None = None
                ) -> SandboxedEnvironment:
    """A template environment where ``<kind>.j2`` is the council's file when settings name one
    and ``default/<kind>.j2`` is always the shipped one (so an override can extend it)."""

    def load(name: str) -> tuple[str, str | None, Any]:
        if name.startswith(DEFAULT_PREFIX):
            name = name[len(DEFAULT_PREFIX):]
        else:
            kind = name.removesuffix(".j2")
            path = settings.templates.get(kind)
            if path is not None:
                if not path.is_absolute() and config_dir is not None:
                    path = config_dir / path
                try:
                    return path.read_text("utf-8"), str(path), lambda: False
                except OSError as exc:
                    raise TemplateProblem(f"notice template for {kind} ({path}): "
                                          f"{exc.strerror or exc}") from None
        try:
            return default_source(name), None, lambda: True
        except (FileNotFoundError, OSError):
            raise TemplateNotFound(name) from None

    return SandboxedEnvironment(loader=FunctionLoader(load), undefined=StrictUndefined,
                                autoescape=False, keep_trailing_newline=True)


def render(env: SandboxedEnvironment, kind: str, context: dict[str, Any]
           ) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """Subject, paragraphs and questions of one notice kind for one reader."""
    template = None
    try:
        template = env.get_template(f"{kind}.j2")
        text = template.render(**context)
    except TemplateProblem:
        raise
    except Exception as exc:  # syntax errors, unknown variables in a council's template
        where = (getattr(exc, "filename", None)
                 or (template.filename if template is not None else None) or f"{kind}.j2")
        line = getattr(exc, "lineno", None)
        raise TemplateProblem(f"notice template {where}"
                              + (f" line {line}" if line else "")
                              + f": {type(exc).__name__}: {exc}") from None
    parts: dict[str, str] = {}
    pieces = _SECTION.split(text)
    for name, body in zip(pieces[1::2], pieces[2::2], strict=True):
        parts[name] = body
    subject = " ".join(parts.get("subject", "").split())
    paragraphs = tuple(" ".join(p.split()) for p in re.split(r"\n\s*\n", parts.get("body", ""))
                       if p.strip())
    questions: list[str] = []
    for line in parts.get("questions", "").splitlines():
        stripped = line.strip()
        if stripped.startswith("- "):
            questions.append(stripped[2:].strip())
        elif stripped and questions:  # a long question wrapped onto the next line
            questions[-1] += " " + stripped
    if not subject:
        raise TemplateProblem(f"notice template {kind}.j2 gives no subject")
    return subject, paragraphs, tuple(questions)


def template_check(settings: NoticeSettings, config_dir: Path | None = None
                   ) -> tuple[str, str] | None:
    """Doctor's view of the council's own templates: ``(status, detail)``, ``failed`` naming the
    file and line of one that cannot be read or parsed, ``warning`` for an ``advice_reminder``
    whose wording ignores ``chase`` (a team a plugin asks itself would be chased twice); None
    when the council replaces none."""
    from jinja2 import TemplateError, meta, nodes

    if not settings.templates:
        return None
    env = environment(settings, config_dir)
    warnings = []
    for kind in sorted(settings.templates):
        name = f"{kind}.j2"
        try:
            source, filename, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
            tree = env.parse(source, name, filename)
        except TemplateProblem as exc:
            return "failed", str(exc)
        except TemplateError as exc:  # a syntax error: name the file and line, as rendering does
            line = getattr(exc, "lineno", None)
            return "failed", (f"notice template {settings.templates[kind]}"
                              + (f" line {line}" if line else "") + f": {exc}")
        if kind == "advice_reminder" and "chase" not in meta.find_undeclared_variables(tree):
            extends = list(meta.find_referenced_templates(tree))
            blocks = {b.name for b in tree.find_all(nodes.Block)}
            if not extends or blocks & {"subject", "body"}:
                warnings.append(f"{settings.templates[kind]} does not use `chase`: a team a "
                                "plugin asks for advice itself (health_referrals) would be "
                                "chased twice; see docs/notices.md")
    if warnings:
        return "warning", "; ".join(warnings)
    return "ok", f"{len(settings.templates)} council template(s) read"
