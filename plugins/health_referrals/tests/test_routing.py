"""route_invite: each synthetic review's invitees go to the right team mailbox; the unmatched go
to the DCO and are flagged; every decision is audited and explained."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner
from ehcbridge.events import HookContext, PupilRecord, Route
from ehcbridge.models import Invitee, Pupil, Role
from ehcbridge.testing import ContextApp, MemoryPluginStore, make_event
from ehcbridge_health_referrals import cli, route_invite
from ehcbridge_health_referrals.routing import area_key
from ehcbridge_health_referrals.settings import HealthReferralsSettings

DCO = "dco.bristol@nhs.net"


def routed(ctx: HookContext, role: Role, *, team: str | None = None, name: str | None = None,
           case_id: str = "EHC-0001", **pupil: Any) -> Route | None:
    """Ask the hook about one invitee of a synthetic review."""
    event = make_event(case_id=case_id)
    person = event.pupil.model_copy(update=pupil)
    invitee = Invitee(role=role, team=team, name=name, email="someone@nhs.example.net")
    result = route_invite(review=event.review, pupil=person, invitee=invitee, ctx=ctx)
    assert result is None or isinstance(result, Route)
    return result


Ctx = Callable[..., HookContext]


# (invitee role, team label, needs from the MIS, postcode district, pupil fields, mailbox)
CASES = [
    (Role.HEALTH, "SALT", (), None, {}, "salt.bristol@nhs.net"),
    (Role.HEALTH, "Speech and Language Therapy team", (), None, {}, "salt.bristol@nhs.net"),
    (Role.HEALTH, "SALT", ("SLCN",), "BS5", {}, "salt.north@nhs.net"),
    (Role.HEALTH, "salt", ("SLCN", "ASD"), "BS7", {}, "salt.north.asd@nhs.net"),
    (Role.HEALTH, "SALT", ("ASD",), "BS3", {}, "salt.south@nhs.net"),
    (Role.HEALTH, "Occupational Therapy", (), None, {}, "ot.children@nhs.net"),
    (Role.HEALTH, "Physio", (), None, {}, "physio.children@nhs.net"),
    (Role.HEALTH, "CAMHS", ("SEMH",), None, {}, "camhs.spa@nhs.net"),
    (Role.HEALTH, "Community Paediatrics", (), None, {"nc_year": 0}, "paeds.primary@nhs.net"),
    (Role.HEALTH, "Community Paediatrics", (), None, {"nc_year": 6}, "paeds.primary@nhs.net"),
    (Role.HEALTH, "Community Paediatrics", (), None, {"nc_year": 7},
     "paeds.secondary@nhs.net"),
    (Role.HEALTH, "School Nursing", (), None, {"school_urn": "100002"},
     "nursing.special@nhs.net"),
    (Role.SOCIAL_CARE, None, (), None, {}, "csc.ehcp@bristol.gov.uk"),
    (Role.SOCIAL_CARE, None, ("SLCN", "PMLD"), None, {}, "dcs@bristol.gov.uk"),
    (Role.OTHER, "Educational Psychology", (), None, {}, "eps@bristol.gov.uk"),
]


@pytest.mark.parametrize(("role", "team", "needs", "district", "pupil", "mailbox"), CASES)
def test_each_review_goes_to_the_right_mailbox(context: Ctx, store: MemoryPluginStore,
                                               role: Role, team: str | None,
                                               needs: tuple[str, ...], district: str | None,
                                               pupil: dict[str, Any], mailbox: str) -> None:
    if district:
        store.set_state(area_key("EHC-0001"), {"postcode_district": district})
    route = routed(context(needs), role, team=team, **pupil)
    assert route is not None
    assert route.email == mailbox
    assert not route.flagged
    assert "EHC-0001" not in store.flags


def test_most_specific_rule_wins_and_the_reason_says_why(context: Ctx,
                                                         store: MemoryPluginStore) -> None:
    store.set_state(area_key("EHC-0001"), {"postcode_district": "bs7"})
    route = routed(context(("SLCN", "ASD")), Role.HEALTH, team="SALT")
    assert route is not None
    assert route.rule == "salt-north-autism"
    assert route.team == "North SALT autism pathway"
    assert "role=health, service=salt, need=ASD, postcode_district=BS5|BS7" in route.reason
    assert "specificity 4, most specific of 3 matching rules" in route.reason


def test_unmatched_goes_to_the_dco_and_is_flagged(context: Ctx,
                                                  store: MemoryPluginStore) -> None:
    route = routed(context(("HI",)), Role.HEALTH, team="Dietetics")
    assert route == Route(team="Designated Clinical Officer service", email=DCO,
                          rule="dco-fallback", flagged=True, reason=route.reason if route else "",
                          advice_by="health_referrals")
    assert route is not None and "no rule matched role=health, service=dietetics" in route.reason
    assert store.flags["EHC-0001"]["unrouted_invite"] == (
        "no routing rule for health dietetics (sent to the DCO service)")
    assert store.audits[-1]["action"] == "route"
    assert store.audits[-1]["detail"]["flagged"] is True


def test_unrouted_flag_clears_when_the_invitee_is_routed(
        context: Ctx, store: MemoryPluginStore,
        settings_factory: Callable[..., HealthReferralsSettings],
        rules: list[dict[str, Any]]) -> None:
    routed(context(), Role.HEALTH, team="Dietetics")
    assert "unrouted_invite" in store.flags["EHC-0001"]
    rules.append({"name": "dietetics", "role": "health", "service": "dietetics",
                  "team": "Dietetics", "mailbox": "diet@nhs.net"})
    route = routed(context(settings_=settings_factory(rules=rules)), Role.HEALTH,
                   team="Dietetics")
    assert route is not None and route.email == "diet@nhs.net"
    assert "unrouted_invite" not in store.flags["EHC-0001"]


def test_asking_again_about_a_routed_invitee_gives_the_same_route(
        context: Ctx, store: MemoryPluginStore) -> None:
    ctx = context()
    event = make_event()
    first = route_invite(review=event.review, pupil=event.pupil,
                         invitee=Invitee(role=Role.HEALTH, team="Dietetics"), ctx=ctx)
    assert first is not None and first.flagged
    salt = route_invite(review=event.review, pupil=event.pupil,
                        invitee=Invitee(role=Role.HEALTH, team="SALT"), ctx=ctx)
    assert salt is not None
    # The engine stores the invitee with the route's team and mailbox, then may ask again.
    for route in (first, salt):
        routed_invitee = Invitee(role=Role.HEALTH, team=route.team, email=route.email,
                                 name="SALT team")
        again = route_invite(review=event.review, pupil=event.pupil, invitee=routed_invitee,
                             ctx=ctx)
        assert again == route
    assert store.audits[-1]["detail"]["outcome"] == "already routed"
    assert len(store.state_items("route:")) == 2


def test_an_invitee_given_a_rule_mailbox_and_team_keeps_it(context: Ctx,
                                                           store: MemoryPluginStore) -> None:
    event = make_event()
    given = Invitee(role=Role.HEALTH, team="children's ot", email="OT.Children@nhs.net")
    kept = route_invite(review=event.review, pupil=event.pupil, invitee=given, ctx=context())
    assert kept is not None and kept.rule == "ot" and not kept.flagged
    assert "already addressed to Children's OT's mailbox" in kept.reason


def test_required_health_placeholder_without_service_goes_to_the_dco(context: Ctx,
                                                                     store: MemoryPluginStore
                                                                     ) -> None:
    # The engine asks about a bare Invitee(role=HEALTH) when nobody from health was invited.
    event = make_event()
    route = route_invite(review=event.review, pupil=event.pupil,
                         invitee=Invitee(role=Role.HEALTH, source="required"), ctx=context())
    assert route is not None and route.email == DCO and route.flagged


def test_person_names_are_not_service_labels(context: Ctx) -> None:
    route = routed(context(), Role.HEALTH, name="Dr Salt")
    assert route is not None and route.flagged  # not sent to SALT because of a surname
    named_team = routed(context(), Role.HEALTH, name="SALT team")
    assert named_team is not None and named_team.email == "salt.bristol@nhs.net"


def test_unmatched_other_roles_are_left_as_they_are(context: Ctx,
                                                    store: MemoryPluginStore) -> None:
    assert routed(context(), Role.OTHER, name="Class teacher") is None
    assert routed(context(), Role.PARENT, name="Parent") is None
    assert "EHC-0001" not in store.flags
    assert store.audits[-1]["detail"]["outcome"] == "left as it is"


def test_no_lookup_means_no_needs(context: Ctx, store: MemoryPluginStore) -> None:
    route = routed(context(), Role.SOCIAL_CARE)
    assert route is not None and route.rule == "social-care"


def test_mis_failure_is_noted_not_fatal(context: Ctx, store: MemoryPluginStore) -> None:
    def broken(upn: str) -> PupilRecord | None:
        raise ConnectionError("MIS down")

    route = routed(context(lookup=broken), Role.SOCIAL_CARE)
    assert route is not None and route.rule == "social-care"
    assert "needs unavailable: MIS lookup failed" in route.reason


def test_lookup_is_called_with_the_upn(context: Ctx) -> None:
    asked: list[str] = []

    def lookup(upn: str) -> PupilRecord:
        asked.append(upn)
        return PupilRecord(pupil=Pupil(upn=upn, forename="S", surname="E"), needs=("pd",))

    route = routed(context(lookup=lookup), Role.SOCIAL_CARE)
    assert asked == ["A123456789012"]
    assert route is not None and route.rule == "disabled-children"  # codes upper-cased


def test_la_code_comes_from_settings_or_the_case_area(
        context: Ctx, store: MemoryPluginStore,
        settings_factory: Callable[..., HealthReferralsSettings],
        rules: list[dict[str, Any]]) -> None:
    rules.append({"name": "csc-neighbour", "role": "social_care", "la_code": 802,
                  "need": "PD;PMLD;MSI", "team": "Neighbour DCS", "mailbox": "dcs@nlc.gov.uk"})
    settings = settings_factory(rules=rules)
    assert routed(context(("PD",), settings_=settings), Role.SOCIAL_CARE).rule == (  # type: ignore[union-attr]
        "disabled-children")
    store.set_state(area_key("EHC-0001"), {"la_code": "802"})
    assert routed(context(("PD",), settings_=settings), Role.SOCIAL_CARE).rule == (  # type: ignore[union-attr]
        "csc-neighbour")


def test_not_configured_routes_nothing(context: Ctx) -> None:
    bare = HealthReferralsSettings()
    assert routed(context(settings_=bare), Role.HEALTH, team="SALT") is None


def test_every_decision_is_audited_without_child_details(context: Ctx,
                                                         store: MemoryPluginStore) -> None:
    routed(context(("SLCN",)), Role.HEALTH, team="OT")
    audit = store.audits[-1]
    assert audit["case_id"] == "EHC-0001" and audit["action"] == "route"
    detail = audit["detail"]
    assert detail["rule"] == "ot" and detail["mailbox"] == "ot.children@nhs.net"
    assert detail["reason"].startswith("rule 'ot' matched on role=health, service=ot")
    text = repr(detail)
    assert "Sam" not in text and "Example" not in text and "2014" not in text
    assert "SLCN" not in text  # needs that played no part are not written down


def test_unmatched_reason_counts_needs_without_naming_them(context: Ctx,
                                                           store: MemoryPluginStore) -> None:
    route = routed(context(("SEMH", "ASD")), Role.HEALTH, team="Dietetics")
    assert route is not None and "2 recorded need(s)" in route.reason
    assert "SEMH" not in repr(store.audits) and "ASD" not in repr(store.audits)


def test_the_mis_is_not_asked_when_no_rule_tests_needs(
        context: Ctx, settings_factory: Callable[..., HealthReferralsSettings],
        rules: list[dict[str, Any]]) -> None:
    asked: list[str] = []

    def lookup(upn: str) -> PupilRecord:
        asked.append(upn)
        return PupilRecord(pupil=Pupil(upn=upn, forename="S", surname="E"), needs=("PD",))

    no_need_rules = [r for r in rules if "need" not in r]
    settings = settings_factory(rules=no_need_rules)
    route = routed(context(lookup=lookup, settings_=settings), Role.SOCIAL_CARE)
    assert route is not None and route.rule == "social-care"
    assert asked == []


def test_explain_lists_each_team_rule_and_reason(context: Ctx, store: MemoryPluginStore,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = context(("ASD",))
    store.set_state(area_key("EHC-0001"), {"postcode_district": "BS5"})
    routed(ctx, Role.HEALTH, team="SALT")
    routed(ctx, Role.SOCIAL_CARE)
    routed(ctx, Role.HEALTH, team="Dietetics")
    monkeypatch.setattr("ehcbridge.invocation.current_app", lambda: ContextApp(ctx))
    result = CliRunner().invoke(cli.group, ["explain", "EHC-0001"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "EHC-0001: 3 invitee(s) routed to 3 team(s)" in out
    assert "- North SALT autism pathway <salt.north.asd@nhs.net>" in out
    assert "rule: salt-north-autism" in out
    assert "why: rule 'salt-north-autism' matched on role=health, service=salt, need=ASD" in out
    assert "- Designated Clinical Officer service <dco.bristol@nhs.net>  [FLAGGED" in out
    assert "advice: advice not yet requested" in out


def test_explain_for_an_unrouted_case(context: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ehcbridge.invocation.current_app", lambda: ContextApp(context()))
    result = CliRunner().invoke(cli.group, ["explain", "EHC-9999"])
    assert result.exit_code == 0
    assert "EHC-9999: no invitee has been routed yet" in result.output


def test_set_area_then_route_by_postcode(context: Ctx, store: MemoryPluginStore,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = context()
    monkeypatch.setattr("ehcbridge.invocation.current_app", lambda: ContextApp(ctx))
    bad = CliRunner().invoke(cli.group, ["set-area", "EHC-0001", "--postcode-district", "BS5 6AB"])
    assert bad.exit_code != 0 and "is not a postcode district" in bad.output
    ok = CliRunner().invoke(cli.group, ["set-area", "EHC-0001", "--postcode-district", "bs4"])
    assert ok.exit_code == 0, ok.output
    route = routed(ctx, Role.HEALTH, team="SALT")
    assert route is not None and route.rule == "salt-south"


def test_rules_command_lists_the_table(context: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ehcbridge.invocation.current_app", lambda: ContextApp(context()))
    result = CliRunner().invoke(cli.group, ["rules"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].startswith("salt-north-autism [rules[3]] specificity 4")
    assert lines[-1] == ("unmatched health/social care -> Designated Clinical Officer service "
                         "<dco.bristol@nhs.net> (flagged)")
