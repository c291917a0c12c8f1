"""Keep secrets and addresses out of logs, terminals and the delivery ledger.

Secrets are found generically, never by a list of plugins: every settings field whose value is a
pydantic ``SecretStr`` (or ``SecretBytes``), and every field marked ``Field(json_schema_extra=
SECRET)``, is registered when its settings are validated. A secret that is a URL (a calendar
feed whose path carries a token) hides the path and query of any URL on its host; any other
secret is replaced wherever it appears. Whatever the settings, ``Authorization`` values, bearer
credentials, JSON web tokens, passwords in URLs, token-like query parameters and assignments
(``password=...``, ``client_secret: ...``) are replaced too, and email addresses lose their
local part at INFO and above.

:class:`RedactingFilter` applies this to every log record (message, arguments and traceback);
the CLI installs it on the root handlers when it sets up logging.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any
from urllib.parse import quote, urlsplit

__all__ = ["SECRET", "RedactingFilter", "install", "redact", "register", "register_settings",
           "secret_values"]

# Mark a plain ``str`` settings field as secret: ``Field(json_schema_extra=SECRET)``.
SECRET: dict[str, Any] = {"secret": True}
HIDDEN = "[redacted]"

_lock = threading.Lock()
_literals: set[str] = set()
_hosts: set[str] = set()  # scheme://netloc of secret URLs, lower-case
_MIN_SECRET = 6  # shorter values ("yes", "test") would blank unrelated words

_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://[^\s/?#\"'<>]+)([/?#][^\s\"'<>]*)?")
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@\"'<>]*:)[^\s/@\"'<>]+@")
# A credential after its scheme; the lookahead (a digit or symbol) spares English ("basic rules").
_AUTH = re.compile(r"\b([Bb]earer|BEARER|Basic|token)(\s+)"
                   r"(?=[A-Za-z._~+/-]*[0-9._~+/=-])[A-Za-z0-9\-._~+/]{8,}=*")
_AUTHORIZATION = re.compile(r"(?i)\b((?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?"
                            r"(?:[a-z]+\s+)?)[^\s'\",;]+")
_ASSIGNED = re.compile(r"(?i)\b((?:access_|refresh_|api_?|client_)?(?:token|key|secret)|password"
                       r"|passwd)(\s*[=:]\s*['\"]?)[^\s'\",;&]{4,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_QUERY = re.compile(r"(?i)([?&;](?:access_token|refresh_token|id_token|token|api_?key|key|"
                    r"secret|client_secret|password|passwd|pwd|sig|signature|code|auth)=)"
                    r"[^&;\s\"'#<>]+")
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@"
                    r"((?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,})\b")


def secret_values(value: Any, marked: bool = False) -> list[str]:
    """Every secret held by a settings model (recursively), as plain strings."""
    from pydantic import BaseModel, SecretBytes, SecretStr  # not at import: the CLI starts fast

    if isinstance(value, SecretStr):
        return [value.get_secret_value()]
    if isinstance(value, SecretBytes):
        return [value.get_secret_value().decode("utf-8", "replace")]
    if isinstance(value, BaseModel):
        found: list[str] = []
        for name, info in type(value).model_fields.items():
            extra = info.json_schema_extra
            is_marked = isinstance(extra, dict) and bool(extra.get("secret"))
            found += secret_values(getattr(value, name, None), is_marked)
        return found
    if isinstance(value, dict):
        return [s for v in value.values() for s in secret_values(v, marked)]
    if isinstance(value, list | tuple | set | frozenset):
        return [s for v in value for s in secret_values(v, marked)]
    if marked and value is not None and not isinstance(value, bool | int | float):
        return [str(value)]
    return []


def register(value: str) -> None:
    """Treat ``value`` as a secret in everything redacted from now on."""
    value = value.strip()
    if len(value) < _MIN_SECRET:
        return
    with _lock:
        parts = urlsplit(value) if "://" in value else None
        if parts is not None and parts.scheme and parts.netloc:
            host = f"{parts.scheme}://{parts.netloc}".lower()
            _hosts.add(host)
            tail = value[len(host):]
            if len(tail) > 1:  # the path and query alone, as a client may log them
                _literals.add(tail)
        else:
            _literals.add(value)
            encoded = quote(value, safe="")
            if encoded != value:
                _literals.add(encoded)


def register_settings(model: Any) -> None:
    """Register every secret of a validated settings model (SecretStr or marked fields)."""
    if model is None:
        return
    for value in secret_values(model):
        register(value)


def _url(match: re.Match[str]) -> str:
    origin, rest = match.group(1), match.group(2) or ""
    host = origin.lower()
    if "@" in host:  # userinfo is handled on its own; compare scheme://host
        scheme, _, after = host.partition("://")
        host = f"{scheme}://{after.rsplit('@', 1)[-1]}"
    if rest and host in _hosts:
        return f"{origin}/{HIDDEN}"
    return match.group(0)


def redact(text: str, *, emails: bool = True) -> str:
    """``text`` with secrets, credentials and (with ``emails``) addresses' local parts hidden."""
    if not text:
        return text
    with _lock:
        literals = sorted(_literals, key=len, reverse=True)
        hosts = bool(_hosts)
    if hosts:
        text = _URL.sub(_url, text)
    for secret in literals:
        if secret in text:
            text = text.replace(secret, HIDDEN)
    text = _USERINFO.sub(rf"\g<1>{HIDDEN}@", text)
    text = _AUTHORIZATION.sub(rf"\g<1>{HIDDEN}", text)
    text = _AUTH.sub(rf"\g<1>\g<2>{HIDDEN}", text)
    text = _ASSIGNED.sub(rf"\g<1>\g<2>{HIDDEN}", text)
    text = _JWT.sub(HIDDEN, text)
    text = _QUERY.sub(rf"\g<1>{HIDDEN}", text)
    if emails:
        text = _EMAIL.sub(rf"{HIDDEN}@\g<1>", text)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter that redacts each record's message and traceback before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        emails = record.levelno >= logging.INFO
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            return True
        clean = redact(message, emails=emails)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info),
                                     emails=emails)
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, emails=emails)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, emails=emails)
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Add a :class:`RedactingFilter` to each handler of ``logger`` (the root by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
