"""Fixtures for ``ehcbridge serve``: a seeded store, the app, a real server, a fake Entra ID."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from ehcbridge.app import App
from ehcbridge.models import LONDON, Duty, DutyStatus, Invitee, Role
from ehcbridge.settings import load_settings
from ehcbridge.store import DEAD
from ehcbridge.web.auth import hash_password
from ehcbridge.web.db import WebStore

NOW = datetime(2027, 2, 1, 9, 0, tzinfo=LONDON)
SECRET = "test-webhook-secret-0123456789"
PASSWORD = "correct horse battery"
LIST = """case_id,upn,forename,surname,dob,nc_year,school_urn,plan_issued
EHC-001,C999000000001,Ava,Brown,2015-05-01,5,100001,2026-03-01
EHC-002,R999000000002,Ben,Carter,2014-02-01,6,100002,2026-03-10
EHC-003,F999000000003,Cal,Davies,2016-09-01,4,100001,2026-04-20
"""


def duty(name: str, due: date, status: DutyStatus, met_on: date | None = None) -> Duty:
    """A duty as issue 12's lifecycle would store it."""
    return Duty(name=name, rule="SEND Regulations 2014 reg 20", kind="statutory", due=due,
                owed_by="la", owed_to=("parent", "setting"), status=status, met_on=met_on)


def make_app(tmp_path: Path, **serve: Any) -> App:
    """An App on a fresh SQLite store with the webhook secret set and the clock fixed."""
    settings = load_settings(None, store={"url": f"sqlite:///{tmp_path / 'serve.sqlite3'}"},
                             serve={"webhook_secret": SECRET, **serve})
    return App(settings, now=NOW)


def seed(app: App) -> dict[str, int]:
    """Three reviews, one at risk, one missed; a dead delivery; two local users."""
    from ehcbridge.intake import import_reviews

    csv = app.settings.store.data_dir / "list.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    csv.write_text(LIST)
    import_reviews(app, csv, now=NOW)
    store = app.store
    store.save_duties(store.case("EHC-001").review.id or 0, [
        duty("invitations_sent", date(2027, 2, 3), DutyStatus.AT_RISK),
        duty("views_requested", date(2027, 1, 10), DutyStatus.MET, date(2027, 1, 8)),
        duty("meeting_held", date(2027, 2, 17), DutyStatus.PENDING),
        duty("report_sent", date(2027, 3, 3), DutyStatus.PENDING),
    ])
    store.add_invitee("EHC-001", Invitee(role=Role.PARENT, email="parent1@example.org"))
    store.add_invitee("EHC-001", Invitee(role=Role.HEALTH, email="salt@nhs.example.net",
                                         team="Speech and Language Therapy"))
    store.set_response("EHC-001", "parent1@example.org", "accepted")
    store.save_duties(store.case("EHC-002").review.id or 0, [
        duty("meeting_held", date(2027, 1, 20), DutyStatus.MISSED),
    ])
    store.schedule_meeting("EHC-003", start=datetime(2027, 3, 1, 10, 0, tzinfo=LONDON),
                           end=datetime(2027, 3, 1, 11, 0, tzinfo=LONDON), now=NOW)
    event = store.undispatched_events()[0]
    store.dispatch(event.id, ["outlook"], event.hook, NOW)
    dead = store.deliveries(case_id="EHC-003")[0]
    store.finish_delivery(dead.id, status=DEAD, attempts=8, next_attempt_at=NOW,
                          error="SMTP 550 mailbox unavailable", now=NOW)
    web = WebStore(store)
    web.add_user("cw@council.example", "caseworker", hash_password(PASSWORD), "local", NOW)
    web.add_user("viewer@council.example", "viewer", hash_password(PASSWORD), "local", NOW)
    return {"dead": dead.id}


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeded database, made once; each test gets a copy."""
    folder = tmp_path_factory.mktemp("seeded")
    first = make_app(folder)
    seed(first)
    first.close()
    return folder / "serve.sqlite3"


@pytest.fixture
def app(tmp_path: Path, seeded_db: Path) -> Iterator[App]:
    """A seeded App on its own copy of the database."""
    shutil.copy(seeded_db, tmp_path / "serve.sqlite3")
    the_app = make_app(tmp_path)
    yield the_app
    the_app.close()


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """uvicorn serving an ASGI app in a thread."""

    def __init__(self, asgi: Any, port: int | None = None, **kwargs: Any) -> None:
        import uvicorn

        self.port = port or free_port()
        config = uvicorn.Config(asgi, host="127.0.0.1", port=self.port, log_level="warning",
                                **kwargs)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class FakeEntra:
    """A loopback OpenID Connect issuer shaped like Entra ID: discovery, authorize (signs in
    ``next_user`` at once), token (checks the code, client secret and PKCE verifier) and JWKS,
    with RS256 ID tokens signed by a key made for the test."""

    TENANT = "11111111-2222-3333-4444-555555555555"
    CLIENT_ID = "ehcbridge-dashboard"
    CLIENT_SECRET = "fake-client-secret"

    def __init__(self, port: int) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.base = f"https://127.0.0.1:{port}/{self.TENANT}"
        self.issuer = f"{self.base}/v2.0"
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.next_user: dict[str, Any] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.sign_with: Any = None  # another key: a forged token

    def asgi(self) -> Any:
        """The issuer's HTTP endpoints."""
        import base64
        import hashlib
        import json
        import secrets
        from urllib.parse import urlencode

        import jwt
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, RedirectResponse
        from starlette.routing import Route

        async def discovery(request: Request) -> JSONResponse:
            return JSONResponse({
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{self.base}/oauth2/v2.0/token",
                "jwks_uri": f"{self.base}/discovery/v2.0/keys",
                "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256"],
            })

        async def authorize(request: Request) -> RedirectResponse:
            q = request.query_params
            assert q["client_id"] == self.CLIENT_ID and q["response_type"] == "code"
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"nonce": q.get("nonce"), "challenge": q["code_challenge"],
                                "redirect_uri": q["redirect_uri"], "user": dict(self.next_user)}
            return RedirectResponse(
                f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}", 302)

        async def token(request: Request) -> JSONResponse:
            form = await request.form()
            grant = self.codes.pop(str(form.get("code")), None)
            if grant is None or form.get("client_secret") != self.CLIENT_SECRET:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            digest = hashlib.sha256(str(form.get("code_verifier")).encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["challenge"]:
                return JSONResponse({"error": "invalid_grant",
                                     "error_description": "PKCE"}, status_code=400)
            now = int(time.time())
            claims = {"iss": self.issuer, "aud": self.CLIENT_ID, "iat": now, "nbf": now,
                      "exp": now + 3600, "nonce": grant["nonce"], "tid": self.TENANT,
                      "sub": "fake-subject", **grant["user"]}
            id_token = jwt.encode(claims, self.sign_with or self.key, algorithm="RS256",
                                  headers={"kid": "test-key"})
            return JSONResponse({"token_type": "Bearer", "access_token": "unused",
                                 "expires_in": 3600, "scope": "openid profile",
                                 "id_token": id_token})

        async def keys(request: Request) -> JSONResponse:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
            jwk.update(kid="test-key", use="sig", alg="RS256")
            return JSONResponse({"keys": [jwk]})

        return Starlette(routes=[
            Route(f"/{self.TENANT}/v2.0/.well-known/openid-configuration", discovery),
            Route(f"/{self.TENANT}/oauth2/v2.0/authorize", authorize),
            Route(f"/{self.TENANT}/oauth2/v2.0/token", token, methods=["POST"]),
            Route(f"/{self.TENANT}/discovery/v2.0/keys", keys),
        ])


@pytest.fixture
def entra(tmp_path: Path) -> Iterator[tuple[FakeEntra, dict[str, Any]]]:
    """The fake issuer over HTTPS (trustme CA) and the serve settings that point at it."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_path, cert_path = tmp_path / "ca.pem", tmp_path / "server.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    port = free_port()
    fake = FakeEntra(port)
    with Server(fake.asgi(), port, ssl_certfile=str(cert_path), ssl_keyfile=str(cert_path)):
        yield fake, {"oidc_authority": f"https://127.0.0.1:{port}/{FakeEntra.TENANT}",
                     "oidc_client_id": FakeEntra.CLIENT_ID,
                     "oidc_client_secret": FakeEntra.CLIENT_SECRET,
                     "oidc_ca_bundle": str(ca_path)}
