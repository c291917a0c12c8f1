"""Loading the routing table: validation errors name the rule (and CSV row and column), and an
ambiguous table is refused naming both rules."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ehcbridge_health_referrals.rules import CSV_COLUMNS, RuleError, load_csv, service_label
from ehcbridge_health_referrals.settings import HealthReferralsSettings
from pydantic import ValidationError

Factory = Callable[..., HealthReferralsSettings]


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rules as a spreadsheet would save them (lists joined with ';')."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(CSV_COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("-" if k == "nc_year" else ";").join(map(str, v))
                             if isinstance(v, list) else v for k, v in row.items()})
    return path


def test_the_dozen_rule_table_loads(settings: HealthReferralsSettings) -> None:
    table = settings.table
    assert len(table.rules) == 13
    by_name = {r.name: r for r in table.rules}
    assert by_name["salt-north-autism"].specificity == 4
    assert by_name["paeds-primary"].specificity == 3  # an nc_year range counts once
    assert by_name["social-care"].specificity == 1
    assert by_name["educational-psychology"].role == ("other",)  # "others" accepted
    assert str(by_name["paeds-primary"].nc_year) == "0-6"


def test_ambiguous_rules_are_refused_naming_both(settings_factory: Factory,
                                                 rules: list[dict[str, Any]]) -> None:
    rules.append({"name": "out-of-area-care", "role": "social_care", "la_code": "802",
                  "team": "Neighbouring LA social care", "mailbox": "csc@nlc.gov.uk"})
    with pytest.raises(ValidationError) as err:
        settings_factory(rules=rules)
    message = str(err.value)
    assert "'disabled-children' (rules[11])" in message
    assert "'out-of-area-care' (rules[13])" in message
    assert "role=social_care" in message and "la_code=802" in message


def test_a_more_specific_rule_covering_the_overlap_settles_the_tie(
        settings_factory: Factory, rules: list[dict[str, Any]]) -> None:
    rules.append({"name": "out-of-area-care", "role": "social_care", "la_code": "802",
                  "team": "Neighbouring LA social care", "mailbox": "csc@nlc.gov.uk"})
    rules.append({"name": "out-of-area-disabled", "role": "social_care", "la_code": "802",
                  "need": ["PD", "PMLD", "MSI"], "team": "Neighbouring LA disabled children",
                  "mailbox": "dcs@nlc.gov.uk"})
    assert len(settings_factory(rules=rules).table.rules) == 15


def test_covering_rule_must_cover_all_of_the_overlap(settings_factory: Factory,
                                                     rules: list[dict[str, Any]]) -> None:
    rules.append({"name": "out-of-area-care", "role": "social_care", "la_code": "802",
                  "team": "Neighbouring LA social care", "mailbox": "csc@nlc.gov.uk"})
    rules.append({"name": "out-of-area-pd-only", "role": "social_care", "la_code": "802",
                  "need": "PD", "team": "x", "mailbox": "x@nlc.gov.uk"})
    with pytest.raises(ValidationError, match=r"'disabled-children'.*'out-of-area-care'"):
        settings_factory(rules=rules)


def test_disjoint_year_ranges_are_not_ambiguous_but_overlapping_ones_are(
        settings_factory: Factory, rules: list[dict[str, Any]]) -> None:
    rules[8] = dict(rules[8], nc_year="6-14")  # paeds-secondary now shares year 6
    with pytest.raises(ValidationError, match=r"'paeds-primary'.*'paeds-secondary'.*nc_year=6"):
        settings_factory(rules=rules)


def test_service_synonyms_count_as_the_same_service(settings_factory: Factory,
                                                    rules: list[dict[str, Any]]) -> None:
    rules.append({"name": "speech", "role": "health",
                  "service": "Speech and Language Therapy team", "team": "x",
                  "mailbox": "x@nhs.net"})
    with pytest.raises(ValidationError, match=r"'salt' .*'speech'"):
        settings_factory(rules=rules)


def test_overlap_settled_by_a_rule_for_the_shared_cases(settings_factory: Factory) -> None:
    salt = {"name": "salt", "role": "health", "service": "SALT", "team": "S",
            "mailbox": "s@nhs.net"}
    slcn = {"name": "slcn", "role": "health", "need": "SLCN", "team": "L",
            "mailbox": "l@nhs.net"}
    with pytest.raises(ValidationError, match=r"'salt' \(rules\[0\]\) and 'slcn'"):
        settings_factory(rules=[salt, slcn])
    both = {"name": "salt-slcn", "role": "health", "service": "SALT", "need": "SLCN",
            "team": "SL", "mailbox": "sl@nhs.net"}
    assert len(settings_factory(rules=[salt, slcn, both]).table.rules) == 3


def test_duplicate_rule_names_are_refused(settings_factory: Factory,
                                          rules: list[dict[str, Any]]) -> None:
    rules.append(dict(rules[0], role="social_care"))
    with pytest.raises(ValidationError, match="rule 'salt' \\(rules\\[13\\]\\) has the same name"):
        settings_factory(rules=rules)


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("need", "DYSLEXIA", "rule 'salt' (rules[0]): need: unknown SEN type 'DYSLEXIA'"),
    ("role", "nurse", "rule 'salt' (rules[0]): role: unknown role 'nurse'"),
    ("mailbox", "salt team", "rule 'salt' (rules[0]): mailbox: 'salt team' is not an email"),
    ("nc_year", "11-7", "rule 'salt' (rules[0]): nc_year: nc_year range '11-7' runs backwards"),
    ("postcode_district", "BS5 6AB", "is not a postcode district"),
    ("portal_url", "http://portal", "portal_url must start with https://"),
    ("data_level", "everything", "rule 'salt' (rules[0]): data_level: Input should be"),
])
def test_bad_rule_values_name_the_rule_and_field(settings_factory: Factory,
                                                 rules: list[dict[str, Any]], field: str,
                                                 value: str, expected: str) -> None:
    rules[0] = dict(rules[0], **{field: value})
    with pytest.raises(ValidationError) as err:
        settings_factory(rules=rules)
    assert expected in str(err.value)


def test_unknown_rule_key_is_refused(settings_factory: Factory,
                                     rules: list[dict[str, Any]]) -> None:
    rules[2] = dict(rules[2], postcode="BS3")
    with pytest.raises(ValidationError, match="rule 'salt-south' \\(rules\\[2\\]\\): postcode"):
        settings_factory(rules=rules)


def test_rules_without_a_dco_mailbox_are_refused(settings_factory: Factory) -> None:
    with pytest.raises(ValidationError, match="dco_mailbox is required"):
        settings_factory(dco_mailbox=None)


def test_csv_table_loads_like_the_toml_one(tmp_path: Path, settings_factory: Factory,
                                           rules: list[dict[str, Any]]) -> None:
    path = write_csv(tmp_path / "routing.csv", rules)
    from_csv = settings_factory(rules=[], rules_csv=path)
    assert [r.name for r in from_csv.table.rules] == [r["name"] for r in rules]
    assert from_csv.table.origins[3] == f"{path} row 5"
    assert from_csv.table.rules[3].postcode_district == ("BS5", "BS7")


def test_csv_error_names_file_row_and_column(tmp_path: Path, rules: list[dict[str, Any]],
                                             settings_factory: Factory) -> None:
    rules[4] = dict(rules[4], need="SLCN;ADHD")
    path = write_csv(tmp_path / "routing.csv", rules)
    with pytest.raises(RuleError) as err:
        load_csv(path)
    assert str(err.value).startswith(f"{path} row 6, column 'need' (rule 'ot'): unknown SEN "
                                     f"type 'ADHD'")
    with pytest.raises(ValidationError, match="row 6, column 'need'"):
        settings_factory(rules=[], rules_csv=path)


def test_csv_ambiguity_names_both_rows(tmp_path: Path, rules: list[dict[str, Any]],
                                       settings_factory: Factory) -> None:
    rules.append({"name": "ot-copy", "role": "health", "service": "occupational therapy",
                  "team": "OT 2", "mailbox": "ot2@nhs.net"})
    path = write_csv(tmp_path / "routing.csv", rules)
    with pytest.raises(ValidationError) as err:
        settings_factory(rules=[], rules_csv=path)
    message = err.value.errors()[0]["msg"]
    assert f"'ot' ({path} row 6)" in message
    assert f"'ot-copy' ({path} row 15)" in message


def test_csv_unknown_column_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("name,team,mailbox,speciality\nx,T,t@nhs.net,SALT\n", encoding="utf-8")
    with pytest.raises(RuleError, match=r"bad.csv row 1: unknown column 'speciality'"):
        load_csv(bad)
    with pytest.raises(RuleError, match=r"cannot read routing table .*missing.csv"):
        load_csv(tmp_path / "missing.csv")


def test_csv_relative_path_resolves_against_config_dir(tmp_path: Path,
                                                       rules: list[dict[str, Any]]) -> None:
    write_csv(tmp_path / "routing.csv", rules)
    settings = HealthReferralsSettings.model_validate(
        {"dco_mailbox": "dco@nhs.net", "rules_csv": "routing.csv"},
        context={"config_dir": str(tmp_path)})
    assert len(settings.table.rules) == 13


@pytest.mark.parametrize(("text", "label"), [
    ("SALT team", "salt"), ("Speech & Language Therapy", "salt"), ("physio", "physiotherapy"),
    ("Community Paediatrics Service", "community paediatrics"), ("Portage", "portage"),
    ("Educational Psychology team", "educational psychology"), ("", None),
])
def test_service_labels(text: str, label: str | None) -> None:
    assert service_label(text) == label


def test_indexed_pair_search_finds_every_overlap_brute_force_does() -> None:
    # The ambiguity check only compares rules sharing a value of an indexed field; compare it
    # with every-pair search on many random tables.
    import random

    from ehcbridge_health_referrals.rules import RoutingRule, _candidate_pairs, _overlap

    rng = random.Random(20)
    choices: dict[str, list[Any]] = {
        "role": ["health", "social_care", ["health", "other"]],
        "service": ["SALT", "OT", ["SALT", "OT"], "CAMHS"],
        "need": ["ASD", "SLCN", ["ASD", "SEMH"]],
        "school_urn": ["100001", "100002", ["100001", "100003"]],
        "nc_year": ["0-6", "5-9", "7-14", 3],
        "la_code": ["801", "802"],
    }
    for _round in range(200):
        rules = []
        for n in range(rng.randint(2, 9)):
            fields = rng.sample(sorted(choices), rng.randint(0, 3))
            rules.append(RoutingRule(name=f"r{n}", team="t", mailbox="t@nhs.net",
                                     **{f: rng.choice(choices[f]) for f in fields}))
        group = list(enumerate(rules))
        for level in {r.specificity for r in rules}:
            same = [(i, r) for i, r in group if r.specificity == level]
            brute = {(i, j) for i, a in same for j, b in same
                     if i < j and _overlap(a, b) is not None}
            found = {(i, j) for i, j in _candidate_pairs(same)
                     if _overlap(rules[i], rules[j]) is not None}
            assert found == brute
