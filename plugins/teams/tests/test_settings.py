"""The [plugins.teams] section: safe defaults, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from ehcbridge_teams.settings import DEFAULT_SUBJECT, TeamsSettings
from pydantic import ValidationError


def test_defaults_are_microsoft_public_cloud_and_privacy_safe() -> None:
    s = TeamsSettings()
    assert s.authority_host == "https://login.microsoftonline.com"
    assert s.graph_url == "https://graph.microsoft.com/v1.0"
    assert s.subject_template == DEFAULT_SUBJECT == "EHCP annual review: {initials} ({case_id})"
    assert s.allow_new_time_proposals is False
    assert not s.configured
    assert s.missing() == ["tenant_id", "client_id", "client_secret or certificate_path",
                           "organiser"]


def test_secret_is_hidden_in_repr() -> None:
    s = TeamsSettings(tenant_id="t", client_id="c", client_secret="hunter2-secret",
                      organiser="sen@school.example.org")
    assert s.configured
    assert "hunter2-secret" not in repr(s) and "hunter2-secret" not in str(s.model_dump())


@pytest.mark.parametrize("template, problem", [
    ("{name} review", "unknown field"),
    ("{needs}", "unknown field"),
    ("{initials", "not a valid template"),
])
def test_subject_template_fields_are_checked(template: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        TeamsSettings(subject_template=template)


def test_full_name_only_when_configured() -> None:
    assert TeamsSettings(subject_template="{forename} {surname}").subject_template


@pytest.mark.parametrize("field, value", [
    ("authority_host", "http://login.example"),
    ("graph_url", "http://graph.example/v1.0"),
    ("organiser", "not-a-mailbox"),
])
def test_bad_values_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match=field):
        TeamsSettings(**{field: value})


def test_http_graph_allowed_only_on_loopback() -> None:
    assert TeamsSettings(graph_url="http://127.0.0.1:8080/v1.0/").graph_url.endswith("/v1.0")


def test_secret_and_certificate_are_exclusive(tmp_path: Path) -> None:
    pem = tmp_path / "app.pem"
    pem.write_text("x")
    with pytest.raises(ValidationError, match="not both"):
        TeamsSettings(client_secret="s", certificate_path=pem, thumbprint="AB")
    with pytest.raises(ValidationError, match="thumbprint is required"):
        TeamsSettings(certificate_path=pem)
    with pytest.raises(ValidationError, match="is not a file"):
        TeamsSettings(certificate_path=tmp_path / "missing.pem", thumbprint="AB")


def test_coordinator_keyword_is_normalised() -> None:
    assert TeamsSettings(organiser=" Coordinator ").organiser == "coordinator"
