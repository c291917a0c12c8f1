"""Sign-in for the dashboard: local accounts (argon2) and Microsoft Entra ID (OIDC with msal).

Entra ID: the authorization-code flow with PKCE through msal; msal checks state and nonce, and
the ID token's RS256 signature, issuer, audience and expiry are verified here against the
issuer's published keys (JWKS) before anyone is signed in. The app roles ``viewer`` and
``caseworker`` (the token's ``roles`` claim) decide what the user may do; a user with neither is
refused.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from ehcbridge.settings import ServeSettings

_HASHER = PasswordHasher()
# Verifying against this keeps the time of "no such user" like that of "wrong password".
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """An argon2id hash of the password."""
    return _HASHER.hash(password)


def check_password(password_hash: str | None, password: str) -> bool:
    """True when the password matches (always takes the time of one argon2 verification)."""
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    """A random URL-safe token for sessions, CSRF and OIDC state."""
    return secrets.token_urlsafe(32)


@dataclass
class RateLimiter:
    """Failed sign-ins per key in a sliding window (per process; enough for one server)."""

    limit: int
    window_seconds: float = 15 * 60
    _hits: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def blocked_for(self, key: str, now: float | None = None) -> float:
        """Seconds until ``key`` may try again (0 when it may now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.get(key)
            if not hits:
                return 0.0
            while hits and hits[0] <= now - self.window_seconds:
                hits.popleft()
            if len(hits) < self.limit:
                return 0.0
            return hits[0] + self.window_seconds - now

    def failed(self, key: str, now: float | None = None) -> None:
        """Count one failed attempt."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._hits.setdefault(key, deque()).append(now)

    def reset(self, key: str) -> None:
        """Forget the failures of ``key`` (after a good sign-in)."""
        with self._lock:
            self._hits.pop(key, None)


class SignInError(Exception):
    """Entra ID sign-in failed; the message is safe to show."""


@dataclass
class EntraSignIn:
    """The OIDC authorization-code flow against Entra ID (or any issuer of the same shape)."""

    settings: ServeSettings
    _flows: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    _app: Any = None
    _discovery: dict[str, Any] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def enabled(self) -> bool:
        """True when an authority and client id are set."""
        return bool(self.settings.oidc_authority and self.settings.oidc_client_id)

    def _msal(self) -> Any:
        if self._app is None:
            import functools

            import msal
            import requests

            session = requests.Session()
            # Per request, so REQUESTS_CA_BUNDLE in the environment cannot override the setting.
            session.request = functools.partial(  # type: ignore[method-assign]
                session.request, verify=self.settings.oidc_ca_bundle or True, timeout=15)
            self._app = msal.ConfidentialClientApplication(
                self.settings.oidc_client_id,
                client_credential=self.settings.oidc_client_secret.get_secret_value() or None,
                authority=self.settings.oidc_authority,
                validate_authority=_is_microsoft(self.settings.oidc_authority or ""),
                instance_discovery=False,
                http_client=session,
            )
        return self._app

    def start(self, redirect_uri: str) -> str:
        """Begin a sign-in; returns the issuer's URL to send the browser to."""
        try:
            flow = self._msal().initiate_auth_code_flow(
                scopes=[], redirect_uri=self.settings.oidc_redirect_uri or redirect_uri)
        except Exception as exc:  # network or discovery failure: say so, without a traceback
            raise SignInError(f"Entra ID cannot be reached ({type(exc).__name__})") from None
        now = time.monotonic()
        with self._lock:
            for state in [s for s, (at, _) in self._flows.items() if now - at > 600]:
                del self._flows[state]
            self._flows[flow["state"]] = (now, flow)
        return str(flow["auth_uri"])

    def finish(self, params: dict[str, str]) -> tuple[str, str]:
        """Complete a sign-in from the redirect's query; returns (user name, role)."""
        with self._lock:
            entry = self._flows.pop(params.get("state", ""), None)
        if entry is None:
            raise SignInError("This sign-in link has expired or was already used. Start again.")
        try:
            result = self._msal().acquire_token_by_auth_code_flow(entry[1], params)
        except ValueError:  # msal: state or nonce mismatch
            raise SignInError("The sign-in response did not match the request.") from None
        except Exception as exc:
            raise SignInError(f"Entra ID cannot be reached ({type(exc).__name__})") from None
        if "error" in result:
            raise SignInError(f"Entra ID refused the sign-in ({result['error']}).")
        claims = self._verified_claims(str(result.get("id_token", "")))
        name = str(claims.get("preferred_username") or claims.get("upn") or claims.get("email")
                   or claims.get("oid") or "")
        roles = claims.get("roles") or []
        role = "caseworker" if "caseworker" in roles else "viewer" if "viewer" in roles else None
        if not name or role is None:
            raise SignInError("Your account has not been given access to ehcbridge (app role "
                              "viewer or caseworker).")
        return name, role

    def _verified_claims(self, id_token: str) -> dict[str, Any]:
        import jwt

        try:
            discovery = self._discover()
            issuer, jwks_uri = str(discovery["issuer"]), str(discovery["jwks_uri"])
            jwks = jwt.PyJWKClient(jwks_uri, ssl_context=self._ssl_context())
            key = jwks.get_signing_key_from_jwt(id_token).key
            claims: dict[str, Any] = jwt.decode(
                id_token, key, algorithms=["RS256"], audience=self.settings.oidc_client_id,
                issuer=issuer, leeway=60)
        except Exception as exc:  # bad token, keys or discovery: one clear refusal
            raise SignInError(f"The ID token failed verification ({type(exc).__name__}).") \
                from None
        return claims

    def _discover(self) -> dict[str, Any]:
        if self._discovery is not None:
            return self._discovery
        import httpx

        authority = (self.settings.oidc_authority or "").rstrip("/")
        url = f"{authority}/v2.0/.well-known/openid-configuration"
        response = httpx.get(url, verify=self._ssl_context(), timeout=15)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        self._discovery = data
        return data

    def _ssl_context(self) -> Any:
        import ssl

        return ssl.create_default_context(cafile=self.settings.oidc_ca_bundle)


def _is_microsoft(authority: str) -> bool:
    from urllib.parse import urlparse

    host = urlparse(authority).hostname or ""
    return host.endswith((".microsoftonline.com", ".microsoftonline.us", ".chinacloudapi.cn"))
