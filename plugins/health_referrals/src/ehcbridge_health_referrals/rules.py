"""Routing rules: what a rule matches, how specific it is, and the load-time ambiguity check."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, field_validator

# CTF SENtype codes (DfE common transfer file specification).
SEN_TYPES = frozenset(
    {"SPLD", "MLD", "SLD", "PMLD", "SEMH", "SLCN", "HI", "VI", "MSI", "PD", "ASD", "OTH", "NSA"}
)

ROLES = frozenset({"health", "social_care", "other", "setting", "la_sen_officer"})
_ROLE_ALIASES = {"others": "other", "social care": "social_care", "socialcare": "social_care"}

# Known services and the labels people use for them; any other label is matched as written.
_SERVICE_ALIASES: dict[str, tuple[str, ...]] = {
    "salt": ("salt", "slt", "speech and language therapy", "speech & language therapy",
             "speech and language", "speech therapy"),
    "ot": ("ot", "occupational therapy"),
    "physiotherapy": ("physiotherapy", "physio"),
    "camhs": ("camhs", "child and adolescent mental health services",
              "child and adolescent mental health"),
    "community paediatrics": ("community paediatrics", "paediatrics",
                              "community paediatrician", "community paediatric"),
    "school nursing": ("school nursing", "school nurse", "school nurses"),
    "audiology": ("audiology",),
    "vision": ("vision", "visual impairment service", "vision support"),
}
_ALIAS_TO_SERVICE = {alias: key for key, aliases in _SERVICE_ALIASES.items() for alias in aliases}
KNOWN_SERVICES = frozenset(_SERVICE_ALIASES)

MATCH_FIELDS = (
    "role", "service", "need", "la_code", "postcode_district", "school_urn", "nc_year",
)
DATA_LEVELS = ("minimal", "needs")

_POSTCODE_DISTRICT = re.compile(r"^[A-Z]{1,2}[0-9][0-9A-Z]?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def service_label(text: str | None) -> str | None:
    """Normalise a service label: case and spacing ignored, a trailing 'team'/'service' dropped,
    and known synonyms mapped to one name (``Speech and Language Therapy team`` -> ``salt``)."""
    if not text:
        return None
    label = " ".join(text.casefold().replace("-", " ").split())
    if label in _ALIAS_TO_SERVICE:
        return _ALIAS_TO_SERVICE[label]
    for suffix in (" team", " service", " services"):
        if label.endswith(suffix):
            stripped = label[: -len(suffix)].strip()
            return _ALIAS_TO_SERVICE.get(stripped, stripped) or None
    return label or None


def known_service(text: str | None) -> str | None:
    """The canonical name when ``text`` names one of the known services, else None."""
    label = service_label(text)
    return label if label in KNOWN_SERVICES else None


def _split(value: Any) -> Any:
    """Accept one value, a list, or a ';'-separated string; None or empty means 'not set'."""
    if value is None:
        return None
    if isinstance(value, str | int):
        parts = [p.strip() for p in str(value).split(";")]
    elif isinstance(value, list | tuple):
        parts = [str(p).strip() for p in value]
    else:
        return value  # let pydantic report the type
    parts = [p for p in parts if p]
    return tuple(parts) or None


Multi = Annotated[tuple[str, ...] | None, BeforeValidator(_split)]


@dataclass(frozen=True)
class YearRange:
    """An inclusive range of National Curriculum years (reception is 0)."""

    low: int
    high: int

    def __contains__(self, year: object) -> bool:
        return isinstance(year, int) and self.low <= year <= self.high

    def intersects(self, other: YearRange) -> bool:
        """True when the two ranges share a year."""
        return self.low <= other.high and other.low <= self.high

    def within(self, other: YearRange) -> bool:
        """True when this range lies inside ``other``."""
        return other.low <= self.low and self.high <= other.high

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


def _year(text: str) -> int:
    text = text.strip().upper()
    if text == "R":
        return 0
    year = int(text)
    if not 0 <= year <= 14:
        raise ValueError(f"NC year {year} is outside 0 (reception) to 14")
    return year


def _parse_years(value: Any) -> YearRange | None:
    if value is None or value == "" or isinstance(value, YearRange):
        return value or None
    try:
        if isinstance(value, int):
            low = high = _year(str(value))
        elif isinstance(value, list | tuple) and len(value) == 2:
            low, high = _year(str(value[0])), _year(str(value[1]))
        elif isinstance(value, str):
            first, sep, last = value.partition("-")
            low = _year(first)
            high = _year(last) if sep else low
        else:
            raise ValueError
    except ValueError as exc:
        detail = f": {exc}" if str(exc) else ""
        raise ValueError(f"nc_year must be a year or a range like '7-11' or [7, 11], "
                         f"not {value!r}{detail}") from None
    if low > high:
        raise ValueError(f"nc_year range {value!r} runs backwards")
    return YearRange(low, high)


class RoutingRule(BaseModel):
    """One row of the routing table: what it matches and where matching invitations go."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str
    role: Multi = None
    service: Multi = None
    need: Multi = None
    la_code: Multi = None
    postcode_district: Multi = None
    school_urn: Multi = None
    nc_year: Annotated[YearRange | None, BeforeValidator(_parse_years)] = None
    team: str
    mailbox: str
    portal_url: str | None = None
    data_level: Literal["minimal", "needs"] = "minimal"

    @field_validator("name", "team")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("role")
    @classmethod
    def _roles(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        roles = tuple(_ROLE_ALIASES.get(v.casefold(), v.casefold()) for v in value)
        unknown = [v for v, r in zip(value, roles, strict=True) if r not in ROLES]
        if unknown:
            raise ValueError(f"unknown role {unknown[0]!r} (use {', '.join(sorted(ROLES))})")
        return roles

    @field_validator("service")
    @classmethod
    def _services(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        labels = tuple(service_label(v) for v in value)
        return tuple(v for v in labels if v) or None

    @field_validator("need")
    @classmethod
    def _needs(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        needs = tuple(v.upper() for v in value)
        unknown = [v for v in needs if v not in SEN_TYPES]
        if unknown:
            raise ValueError(f"unknown SEN type {unknown[0]!r} (CTF types: "
                             f"{', '.join(sorted(SEN_TYPES))})")
        return needs

    @field_validator("la_code")
    @classmethod
    def _la_codes(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        codes = tuple(v.zfill(3) for v in value)
        bad = [v for v in codes if not (v.isdigit() and len(v) == 3)]
        if bad:
            raise ValueError(f"LA code {bad[0]!r} is not a three-digit DfE LA number")
        return codes

    @field_validator("postcode_district")
    @classmethod
    def _districts(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        districts = tuple(normalise_district(v) for v in value)
        bad = [v for v in districts if not _POSTCODE_DISTRICT.match(v)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a postcode district (the outward code, e.g. BS5)")
        return districts

    @field_validator("school_urn")
    @classmethod
    def _urns(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        bad = [v for v in value if not (v.isdigit() and 5 <= len(v) <= 7)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a school URN (six digits)")
        return value

    @field_validator("mailbox")
    @classmethod
    def _mailbox(cls, value: str) -> str:
        value = value.strip()
        if not _EMAIL.match(value):
            raise ValueError(f"{value!r} is not an email address")
        return value

    @field_validator("portal_url")
    @classmethod
    def _portal(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith("https://"):
            raise ValueError("portal_url must start with https://")
        return value.strip()

    @property
    def specificity(self) -> int:
        """How many match fields the rule sets (an nc_year range counts once)."""
        return sum(getattr(self, f) is not None for f in MATCH_FIELDS)

    def conditions(self) -> dict[str, str]:
        """The rule's match fields as text, for explanations."""
        out: dict[str, str] = {}
        for f in MATCH_FIELDS:
            value = getattr(self, f)
            if value is not None:
                out[f] = str(value) if isinstance(value, YearRange) else "|".join(value)
        return out


def normalise_district(text: str) -> str:
    """Upper-case a postcode district and drop spaces (``bs 5`` -> ``BS5``)."""
    return "".join(text.split()).upper()


class RuleError(ValueError):
    """A routing table that cannot be loaded; the message names the rule (and CSV row)."""


def parse_rule(raw: Any, where: str) -> RoutingRule:
    """Validate one rule from settings or CSV; errors name the rule and ``where`` it came from."""
    if isinstance(raw, RoutingRule):
        return raw
    name = raw.get("name") if isinstance(raw, dict) else None
    label = f"rule {name!r} ({where})" if name else f"rule at {where}"
    try:
        return RoutingRule.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'rule'}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise RuleError(f"{label}: {problems}") from None


CSV_COLUMNS = ("name", *MATCH_FIELDS, "team", "mailbox", "portal_url", "data_level")


def load_csv(path: Path) -> list[tuple[RoutingRule, str]]:
    """Read rules from a CSV file (header row of column names); errors name the file, row and
    column. Multiple values in one cell are separated by ';'."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")  # Excel writes a BOM
    except OSError as exc:
        raise RuleError(f"cannot read routing table {path}: {exc.strerror}") from None
    rules: list[tuple[RoutingRule, str]] = []
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or []]
        unknown = [h for h in header if h not in CSV_COLUMNS]
        if unknown:
            raise RuleError(f"{path} row 1: unknown column {unknown[0]!r} "
                            f"(columns: {', '.join(CSV_COLUMNS)})")
        for required in ("name", "team", "mailbox"):
            if required not in header:
                raise RuleError(f"{path} row 1: missing column {required!r}")
        reader.fieldnames = header
        for row in reader:
            where = f"{path} row {reader.line_num}"
            if None in row:
                raise RuleError(f"{where}: more cells than columns")
            cells = {k: (v or "").strip() for k, v in row.items()}
            if not any(cells.values()):
                continue
            raw = {k: v for k, v in cells.items() if v != ""}
            rules.append((_parse_csv_rule(raw, where), where))
    return rules


def _parse_csv_rule(raw: dict[str, str], where: str) -> RoutingRule:
    try:
        return RoutingRule.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        column = str(err["loc"][0]) if err["loc"] else "row"
        name = raw.get("name")
        label = f" (rule {name!r})" if name else ""
        raise RuleError(f"{where}, column {column!r}{label}: "
                        f"{err['msg'].removeprefix('Value error, ')}") from None


def _overlap(a: RoutingRule, b: RoutingRule) -> dict[str, Any] | None:
    """The set of cases both rules match, field by field, or None when no case matches both."""
    box: dict[str, Any] = {}
    for f in MATCH_FIELDS:
        va, vb = getattr(a, f), getattr(b, f)
        if va is None or vb is None:
            box[f] = va if vb is None else vb
            continue
        if f == "nc_year":
            if not va.intersects(vb):
                return None
            box[f] = YearRange(max(va.low, vb.low), min(va.high, vb.high))
        else:
            common = tuple(v for v in va if v in vb)
            if not common:
                return None
            box[f] = common
    return box


def _covers(rule: RoutingRule, box: dict[str, Any]) -> bool:
    """True when ``rule`` matches every case in ``box`` (so it settles a tie inside it)."""
    for f in MATCH_FIELDS:
        value = getattr(rule, f)
        if value is None:
            continue
        constraint = box.get(f)
        if constraint is None:
            return False
        if f == "nc_year":
            if not constraint.within(value):
                return False
        elif not set(constraint) <= set(value):
            return False
    return True


@dataclass(frozen=True)
class RoutingTable:
    """A validated routing table: rules in the order given, with where each came from."""

    rules: tuple[RoutingRule, ...]
    origins: tuple[str, ...]

    @classmethod
    def build(cls, entries: Iterable[tuple[RoutingRule, str]]) -> RoutingTable:
        """Check names are unique and no two equally specific rules tie on some case."""
        items = list(entries)
        seen: dict[str, str] = {}
        for rule, where in items:
            key = rule.name.casefold()
            if key in seen:
                raise RuleError(f"rule {rule.name!r} ({where}) has the same name as the rule at "
                                f"{seen[key]}")
            seen[key] = where
        table = cls(tuple(r for r, _ in items), tuple(w for _, w in items))
        table._check_ambiguity()
        return table

    def origin(self, rule: RoutingRule) -> str:
        """Where a rule was defined (settings index or CSV row)."""
        return self.origins[self.rules.index(rule)]

    def _check_ambiguity(self) -> None:
        by_level: dict[int, list[tuple[int, RoutingRule]]] = {}
        for position, rule in enumerate(self.rules):
            by_level.setdefault(rule.specificity, []).append((position, rule))
        for level, group in sorted(by_level.items()):
            higher = [r for r in self.rules if r.specificity > level]
            for i, j in _candidate_pairs(group):
                a, b = self.rules[i], self.rules[j]
                box = _overlap(a, b)
                if box is None or any(_covers(r, box) for r in higher):
                    continue
                shared = ", ".join(
                    f"{f}={v}" if isinstance(v, YearRange) else f"{f}={'|'.join(v)}"
                    for f, v in box.items() if v is not None
                ) or "every case"
                raise RuleError(
                    f"ambiguous routing rules {a.name!r} ({self.origins[i]}) and {b.name!r} "
                    f"({self.origins[j]}): both set {level} match field(s) and both match "
                    f"cases with {shared}; make one more specific, or add a more specific "
                    f"rule for those cases"
                )


def _field_values(rule: RoutingRule, field: str) -> list[Any]:
    value = getattr(rule, field)
    if isinstance(value, YearRange):
        return list(range(value.low, value.high + 1))
    return list(value)


def _candidate_pairs(group: list[tuple[int, RoutingRule]]) -> list[tuple[int, int]]:
    """Pairs of equally specific rules that might overlap, by table position. Rules that share a
    field can only overlap if they share a value of it, so they are matched through an index on
    the most varied shared field rather than every rule against every other (tables of
    thousands of per-school rules stay quick)."""
    by_fields: dict[frozenset[str], list[tuple[int, RoutingRule]]] = {}
    for position, rule in group:
        fields = frozenset(f for f in MATCH_FIELDS if getattr(rule, f) is not None)
        by_fields.setdefault(fields, []).append((position, rule))
    kinds = list(by_fields)
    pairs: set[tuple[int, int]] = set()
    for n, first in enumerate(kinds):
        for second in kinds[n:]:
            left, right = by_fields[first], by_fields[second]
            common = first & second
            if not common:
                pairs.update((min(p, q), max(p, q)) for p, _ in left for q, _ in right if p != q)
                continue
            key = max(sorted(common), key=lambda f: len(
                {v for _, r in left + right for v in _field_values(r, f)}))
            index: dict[Any, list[int]] = {}
            for q, rule in right:
                for value in _field_values(rule, key):
                    index.setdefault(value, []).append(q)
            for p, rule in left:
                for value in _field_values(rule, key):
                    pairs.update((min(p, q), max(p, q)) for q in index.get(value, ()) if q != p)
    return sorted(pairs)


def rules_from_settings(raw_rules: Sequence[Any]) -> list[tuple[RoutingRule, str]]:
    """Validate the ``rules`` array of the settings section."""
    return [(parse_rule(raw, f"rules[{i}]"), f"rules[{i}]") for i, raw in enumerate(raw_rules)]
