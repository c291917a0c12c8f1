"""Auth and transport: msal app reuse, certificates, TLS trust, concurrency, error bodies."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ehcbridge_teams as plugin
import httpx
import pluggy
import pytest
from ehcbridge import hookspecs
from ehcbridge.http import ServiceUnavailable
from ehcbridge.testing import make_event
from ehcbridge_teams import auth
from ehcbridge_teams.graph import PREFER_LONDON, GraphClient, GraphError
from ehcbridge_teams.meetings import make_client
from ehcbridge_teams_fake_graph import ORGANISER, settings_for


def test_one_msal_app_per_tenant_reuses_its_token(fake: Any, ctx: Any) -> None:
    plugin.provide_online_meeting(make_event(case_id="EHC-1"), ctx)
    plugin.provide_online_meeting(make_event(case_id="EHC-2"), ctx)
    plugin.check(ctx)
    assert len(fake.token_requests) == 1
    [form] = fake.token_requests
    assert form["grant_type"] == ["client_credentials"]
    assert form["scope"] == [f"{fake.base}/.default"]


def test_tls_trust_comes_from_ssl_cert_file_when_no_ca_bundle(
        fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(fake, ca_bundle=None)
    with pytest.raises(auth.TokenError, match="cannot reach"):
        auth.acquire_token(settings)  # the fake CA is not in the system store
    auth.reset_apps()
    monkeypatch.setenv("SSL_CERT_FILE", str(fake.ca_path))
    assert auth.acquire_token(settings).startswith("tok-")


def test_certificate_credential_sends_a_signed_assertion(fake: Any, tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ehcbridge")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pem = tmp_path / "app.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
                    + cert.public_bytes(serialization.Encoding.PEM))
    thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - Entra's format

    settings = settings_for(fake, client_secret=None, certificate_path=pem, thumbprint=thumbprint)
    assert auth.acquire_token(settings).startswith("tok-")

    [form] = fake.token_requests
    assert "client_secret" not in form
    header_b64 = form["client_assertion"][0].split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
    assert header["alg"] == "RS256"
    assert header.get("x5t") or header.get("x5t#S256")


def test_at_most_four_requests_in_flight_per_mailbox(fake: Any, settings: Any) -> None:
    fake.delay = 0.05
    client = make_client(settings)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            client.request("GET", f"/users/{ORGANISER}/calendar", mailbox=ORGANISER)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    assert errors == []
    assert 2 <= fake.max_in_flight[ORGANISER] <= 4


def _client(handler: Any, **kw: Any) -> GraphClient:
    return GraphClient("https://graph.test/v1.0", lambda: "token",
                       transport=httpx.MockTransport(handler), sleep=lambda s: None, **kw)


def test_graph_error_body_is_parsed_and_the_code_reported() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"code": "ErrorInvalidIdMalformed",
                                                   "message": "Id is malformed."}})

    with pytest.raises(GraphError) as caught:
        _client(handler).request("GET", "/users/x@y/events/1", mailbox="x@y")
    assert caught.value.code == "ErrorInvalidIdMalformed"
    assert "x@y" in str(caught.value) and "Id is malformed." in str(caught.value)


def test_non_json_server_error_is_temporary_with_its_status() -> None:
    with pytest.raises(ServiceUnavailable) as caught:
        _client(lambda r: httpx.Response(502, text="<html>bad gateway</html>"),
                max_attempts=2).request("GET", "/x")
    assert caught.value.status == 502 and "HTTP 502" in str(caught.value)


def test_504_is_retried_then_succeeds() -> None:
    answers = iter([httpx.Response(504), httpx.Response(200, json={"ok": True})])
    response = _client(lambda r: next(answers)).request("GET", "/x")
    assert response.json() == {"ok": True}


def test_every_call_asks_for_london_times() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Prefer", ""))
        return httpx.Response(200, json={})

    _client(handler).request("GET", "/x")
    assert seen == ['outlook.timezone="Europe/London"'] == [PREFER_LONDON]


def test_plugin_loads_against_the_core_hookspecs() -> None:
    pm = pluggy.PluginManager("ehcbridge")
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="teams")
    pm.check_pending()
    assert pm.hook.provide_online_meeting.get_hookimpls()


def test_importing_the_plugin_does_not_import_vendor_sdks() -> None:
    import subprocess
    import sys

    code = ("import sys, ehcbridge_teams; "
            "print(sorted(m for m in ('msal', 'httpx', 'tenacity') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_unusable_certificate_is_a_clear_permanent_error(fake: Any, tmp_path: Path) -> None:
    pem = tmp_path / "broken.pem"
    pem.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    settings = settings_for(fake, client_secret=None, certificate_path=pem, thumbprint="AB12")
    with pytest.raises(auth.TokenError) as caught:
        auth.acquire_token(settings)
    assert caught.value.permanent
    assert str(pem) in str(caught.value) and "bm90IGEga2V5" not in str(caught.value)
    assert fake.token_requests == []


@pytest.mark.parametrize("host, discovery", [
    ("https://login.microsoftonline.com", True),
    ("https://login.microsoftonline.us", True),
    ("https://login.example.test", False),
])
def test_instance_discovery_only_for_microsoft_hosts(monkeypatch: pytest.MonkeyPatch, host: str,
                                                     discovery: bool) -> None:
    from ehcbridge_teams.settings import TeamsSettings

    seen: dict[str, Any] = {}

    class App:
        def __init__(self, client_id: str, **kwargs: Any) -> None:
            seen.update(kwargs)

    monkeypatch.setattr(auth.msal, "ConfidentialClientApplication", App)
    auth.get_app(TeamsSettings(tenant_id="t", client_id="c", client_secret="s",
                               organiser=ORGANISER, authority_host=host))
    assert seen["instance_discovery"] is discovery
    assert seen["authority"] == f"{host}/t"
    assert isinstance(seen["http_client"], auth.MsalHttpClient)
