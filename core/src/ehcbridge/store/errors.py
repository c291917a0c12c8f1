"""The store's errors, and why no database error ever carries a child's data out of the store.

A database error's text can hold the row it refused: SQLAlchemy appends the statement's
parameters (forename, surname, date of birth...), and PostgreSQL's own message quotes values
("Key (upn)=(...) already exists", "date/time field value out of range: ..."). The store therefore
creates its engine with ``hide_parameters`` and passes every error through :func:`on_error`, which
rewrites the driver's message to a fixed description of the error class; values that do not fit
a column (too long, a NUL byte, out of range) become :class:`StoreDataError`. The import path
checks each value against the schema first (:func:`misfits`) so the error names the case and the
column, like any other row problem.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import Integer, String, Table
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError

# PostgreSQL SQLSTATE classes (appendix A of the PostgreSQL manual), described without values.
_CLASSES = {
    "22": "a value does not fit its column (too long, a NUL byte, or out of range)",
    "23": "the change would break a uniqueness or reference rule",
}
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1  # SQL INTEGER on PostgreSQL


class StoreError(Exception):
    """A request the store cannot carry out (unknown case, review already decided...).

    ``case_id``, ``field`` and ``value`` say where, so an import can name the row and column
    without reading the message."""

    def __init__(self, message: str, *, case_id: str | None = None, field: str | None = None,
                 value: str | None = None) -> None:
        super().__init__(message)
        self.case_id = case_id
        self.field = field
        self.value = value


class StoreDataError(StoreError):
    """The database refused a value; the message names no value."""


class ValueRejected(StoreError):
    """Values that do not fit the store's schema, as (case id, column, problem): names the case
    and the column, never the value."""

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        self.problems = problems
        case_id, column, problem = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{case_id}: {column} {problem}{more}", case_id=case_id, field=column)


def misfits(table: Table, values: dict[str, Any]) -> list[tuple[str, str]]:
    """(column, problem) for each value that the column cannot hold on every backend.

    SQLite accepts a 12-character string in a ``VARCHAR(10)``; PostgreSQL refuses it. Checking
    against the schema makes both backends refuse the same rows with the same message.
    """
    out: list[tuple[str, str]] = []
    kinds = _kinds(table)
    for name, value in values.items():
        if value is None or name not in kinds:
            continue
        length, integer = kinds[name]
        if isinstance(value, str):
            if "\x00" in value:
                out.append((name, "contains a NUL byte"))
            elif length and len(value) > length:
                out.append((name, f"is longer than {length} characters"))
        elif (integer and isinstance(value, int) and not isinstance(value, bool)
              and not _INT_MIN <= value <= _INT_MAX):
            out.append((name, "is out of range"))
    return out


@lru_cache(maxsize=64)
def _kinds(table: Table) -> dict[str, tuple[int | None, bool]]:
    """(string length, is an integer) per column: read from the schema once per table, as an
    import checks every value of a caseload against it."""
    return {c.name: (c.type.length if isinstance(c.type, String) else None,
                     isinstance(c.type, Integer)) for c in table.c}


def describe(orig: BaseException) -> str:
    """A description of a driver error that holds no value from the statement."""
    sqlstate = getattr(orig, "sqlstate", None) or ""
    name = type(orig).__name__
    if sqlstate[:2] in _CLASSES:
        return f"{_CLASSES[sqlstate[:2]]} ({name}, SQLSTATE {sqlstate})"
    if _is_data_error(orig):
        return f"{_CLASSES['22']} ({name})"
    if _is_integrity_error(orig):
        return f"{_CLASSES['23']} ({name})"
    return ""


def _is_data_error(orig: BaseException) -> bool:
    # psycopg raises its DataError for a NUL byte before the server sees the row.
    return type(orig).__name__ == "DataError" or any(
        c.__name__ == "DataError" for c in type(orig).__mro__)


def _is_integrity_error(orig: BaseException) -> bool:
    return any(c.__name__ == "IntegrityError" for c in type(orig).__mro__)


def copy_failed(statement: str, orig: Exception) -> Exception:
    """What a COPY the driver refused raises: the same scrubbed message and exception class as
    a statement sent through SQLAlchemy (:func:`on_error`)."""
    safe = describe(orig) or type(orig).__name__
    orig.args = (safe,)
    if _is_data_error(orig) or (getattr(orig, "sqlstate", None) or "").startswith("22"):
        return StoreDataError(f"the database refused a value: {safe}")
    wrapped = DBAPIError.instance(statement, None, orig, type(orig), hide_parameters=True)
    wrapped.args = (f"({type(orig).__module__}.{type(orig).__name__}) {safe}",)
    return wrapped


def on_error(ctx: ExceptionContext) -> BaseException | None:
    """SQLAlchemy ``handle_error`` hook: scrub values from the driver's message.

    The driver's exception is chained to whatever is raised, so its text is rewritten in place;
    a data error becomes :class:`StoreDataError` (callers and the CLI report it as a row error).
    """
    orig = ctx.original_exception
    # SQLite's messages name the constraint, never the value ("UNIQUE constraint failed: ...").
    safe = "" if type(orig).__module__.startswith("sqlite3") else describe(orig)
    if not safe:
        return None  # connection and programming errors carry no row values
    orig.args = (safe,)
    if ctx.sqlalchemy_exception is not None:
        ctx.sqlalchemy_exception.args = (f"({type(orig).__module__}.{type(orig).__name__}) "
                                         f"{safe}",)
    if _is_data_error(orig) or (getattr(orig, "sqlstate", None) or "").startswith("22"):
        return StoreDataError(f"the database refused a value: {safe}")
    return None


def check_cases(items: list[Any]) -> None:
    """Raise :class:`ValueRejected` listing every value of the cases to import that the schema
    cannot hold, named as the review list names it (``school_urn``, ``parent_email``...)."""
    from ehcbridge.store import schema as t

    problems: list[tuple[str, str, str]] = []
    for item in items:
        pupil, plan = item.pupil, item.plan
        checks: list[tuple[Table, dict[str, Any], str]] = [
            (t.pupils, dict(upn=pupil.upn, forename=pupil.forename, surname=pupil.surname,
                            dob=pupil.dob, nc_year=pupil.nc_year, school_urn=pupil.school_urn),
             ""),
            (t.plans, dict(case_id=plan.case_id, plan_type=plan.plan_type,
                           coordinator_email=item.coordinator_email), ""),
        ]
        for invitee in item.invitees:
            checks.append((t.invitees, dict(name=invitee.name, email=invitee.email,
                                            team=invitee.team), f"{invitee.role.value}_"))
        if item.meeting is not None:
            checks.append((t.meetings, dict(location=item.meeting[2]), ""))
        for table, values, prefix in checks:
            problems += [(plan.case_id, prefix + column, problem)
                         for column, problem in misfits(table, values)]
    if problems:
        raise ValueRejected(problems)


def database_error_text(exc: BaseException) -> str | None:
    """One line for the terminal about a store or database error (None for anything else)."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, StoreError):
        return str(exc)
    if isinstance(exc, DBAPIError):
        orig = exc.orig if isinstance(exc.orig, BaseException) else exc
        first = (str(orig).splitlines() or [""])[0]
        return f"database error ({type(orig).__name__}): {describe(orig) or first}"
    return None
