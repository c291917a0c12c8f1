"""App-only tokens from Microsoft Entra ID through msal (client credentials)."""

from __future__ import annotations

import hashlib
import os
import re
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

import httpx
import msal

from ehcbridge_teams.settings import TeamsSettings

GRAPH_SCOPE_SUFFIX = "/.default"
# Hosts msal knows; for any other (a national cloud proxy, a test double) instance discovery is
# turned off, otherwise msal would call login.microsoftonline.com to validate the host.
_KNOWN_HOSTS = frozenset(
    getattr(getattr(msal, "authority", None), "WELL_KNOWN_AUTHORITY_HOSTS", ())
) | {"login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn",
     "login.partner.microsoftonline.cn"}
# Token errors that retrying cannot fix: wrong secret, unknown tenant or app, missing consent.
_PERMANENT_TOKEN_ERRORS = frozenset(
    {"invalid_client", "unauthorized_client", "invalid_request", "invalid_scope",
     "invalid_grant", "access_denied"}
)

_APPS: dict[tuple[str, ...], Any] = {}
_APPS_LOCK = threading.Lock()


class TokenError(Exception):
    """A token could not be obtained; ``permanent`` says whether retrying can help."""

    def __init__(self, message: str, *, code: str = "", permanent: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.permanent = permanent


class MsalHttpClient:
    """httpx behind the requests-like interface msal calls (``post``/``get``)."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def post(self, url: str, params: Any = None, data: Any = None, headers: Any = None,
             **kwargs: Any) -> httpx.Response:
        """POST a form; bytes values are decoded because httpx would send their repr."""
        if isinstance(data, dict):
            # msal hands the certificate's client_assertion over as bytes.
            data = {k: v.decode() if isinstance(v, bytes) else v for k, v in data.items()}
        return self._client.post(url, params=params, data=data, headers=headers, **kwargs)

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any
            ) -> httpx.Response:
        """GET (OIDC discovery)."""
        return self._client.get(url, params=params, headers=headers, **kwargs)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def _msal_http_error(settings: TeamsSettings, exc: Exception, what: str) -> TokenError:
    # msal raises MsalServiceError("HTTP Error: 503") for answers that are not OAuth errors.
    found = re.search(r"\b(\d{3})\b", str(exc))
    status = int(found.group(1)) if found else 0
    transient = status == 0 or status == 429 or status >= 500
    return TokenError(
        f"{settings.authority_host} answered HTTP {status or '?'} to the {what} for tenant "
        f"{settings.tenant_id}", code=f"HTTP{status}", permanent=not transient,
    )


def _credential_error(settings: TeamsSettings, exc: Exception) -> TokenError:
    # Only the exception type: messages from key parsing could echo file content.
    which = (f"the certificate {settings.certificate_path}" if settings.certificate_path
             else "the client secret")
    return TokenError(f"cannot use {which} to sign in ({type(exc).__name__}); check the file, "
                      "thumbprint and passphrase", code="bad_credential")


def ssl_context(settings: TeamsSettings) -> ssl.SSLContext:
    """TLS trust: ca_bundle if set, else SSL_CERT_FILE / SSL_CERT_DIR, else the system store."""
    if settings.ca_bundle is not None:
        return ssl.create_default_context(cafile=str(settings.ca_bundle))
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    return ssl.create_default_context()


def graph_scope(settings: TeamsSettings) -> str:
    """The client-credentials scope for the configured Graph host (national clouds differ)."""
    parts = urlsplit(settings.graph_url)
    return f"{parts.scheme}://{parts.netloc}{GRAPH_SCOPE_SUFFIX}"


def _credential(settings: TeamsSettings) -> Any:
    if settings.client_secret is not None:
        return settings.client_secret.get_secret_value()
    assert settings.certificate_path is not None
    passphrase = (
        settings.certificate_passphrase.get_secret_value()
        if settings.certificate_passphrase is not None else None
    )
    if settings.certificate_path.suffix.lower() in {".pfx", ".p12"}:
        cred: dict[str, Any] = {"private_key_pfx_path": str(settings.certificate_path)}
    else:
        cred = {
            "private_key": settings.certificate_path.read_text(encoding="utf-8"),
            "thumbprint": (settings.thumbprint or "").replace(":", "").strip(),
        }
    if passphrase:
        cred["passphrase"] = passphrase
    return cred


def _cache_key(settings: TeamsSettings) -> tuple[str, ...]:
    # A hash of the credential, so a rotated secret gets a fresh app (msal caches failed token
    # responses per app); the hash never leaves this process.
    secret = (
        settings.client_secret.get_secret_value() if settings.client_secret is not None
        else f"{settings.certificate_path}|{settings.thumbprint}"
    )
    return (
        settings.authority, settings.client_id or "", str(settings.ca_bundle or ""),
        hashlib.sha256(secret.encode()).hexdigest(),
    )


def get_app(settings: TeamsSettings) -> Any:
    """The one msal app per tenant and client, so its token cache is reused."""
    key = _cache_key(settings)
    with _APPS_LOCK:
        app = _APPS.get(key)
        if app is not None:
            return app
        host = urlsplit(settings.authority_host).hostname or ""
        http_client = httpx.Client(verify=ssl_context(settings), timeout=settings.timeout_seconds)
        try:
            app = msal.ConfidentialClientApplication(
                settings.client_id,
                client_credential=_credential(settings),
                authority=settings.authority,
                http_client=MsalHttpClient(http_client),
                instance_discovery=host in _KNOWN_HOSTS,
            )
        except httpx.TransportError as exc:
            http_client.close()
            raise TokenError(
                f"cannot reach {settings.authority_host}: {type(exc).__name__}", permanent=False
            ) from None
        except (httpx.HTTPStatusError, msal.exceptions.MsalError) as exc:
            http_client.close()
            raise _msal_http_error(settings, exc, "tenant discovery") from None
        except ValueError as exc:
            http_client.close()
            if "authority" not in str(exc).lower():
                raise _credential_error(settings, exc) from None
            # msal's ValueError names the authority and tenant only, never the credential.
            raise TokenError(
                f"tenant {settings.tenant_id} not found at {settings.authority_host}: "
                f"{str(exc).splitlines()[0][:200]}",
                code="tenant_not_found",
            ) from None
        except Exception as exc:  # unreadable PFX, wrong passphrase...
            http_client.close()
            raise _credential_error(settings, exc) from None
        _APPS[key] = app
        return app


def acquire_token(settings: TeamsSettings) -> str:
    """An access token for Microsoft Graph (from msal's cache while it is valid)."""
    app = get_app(settings)
    try:
        result = app.acquire_token_for_client(scopes=[graph_scope(settings)])
    except httpx.TransportError as exc:
        raise TokenError(
            f"cannot reach {settings.authority_host}: {type(exc).__name__}", permanent=False
        ) from None
    except msal.exceptions.MsalError as exc:
        raise _msal_http_error(settings, exc, "token request") from None
    except Exception as exc:  # the private key cannot sign (bad PEM, wrong passphrase)
        raise _credential_error(settings, exc) from None
    if result and "access_token" in result:
        return str(result["access_token"])
    result = result or {}
    code = str(result.get("error", "unknown_error"))
    description = str(result.get("error_description", ""))
    aadsts = re.search(r"AADSTS\d+", description)
    detail = f" ({aadsts.group(0)})" if aadsts else ""
    hint = {
        "invalid_client": "check client_secret or the certificate and thumbprint",
        "unauthorized_client": "check client_id and that the app exists in this tenant",
        "invalid_request": "check tenant_id and client_id",
        "invalid_scope": "check graph_url matches the cloud of authority_host",
    }.get(code, "see the app registration in Microsoft Entra ID")
    raise TokenError(
        f"token request for client {settings.client_id} in tenant {settings.tenant_id} "
        f"refused: {code}{detail}; {hint}",
        code=code,
        permanent=code in _PERMANENT_TOKEN_ERRORS,
    )


def reset_apps() -> None:
    """Forget every cached app (tests, and after settings are reloaded)."""
    with _APPS_LOCK:
        _APPS.clear()


class MsalTokens:
    """Graph tokens for the HTTP kit: msal's cached token, and a fresh one after a 401."""

    def __init__(self, settings: TeamsSettings) -> None:
        self.settings = settings

    def token(self) -> str:
        """The cached token while msal thinks it valid, else a new one."""
        return acquire_token(self.settings)

    def renew(self, rejected: str) -> str:
        """Forget ``rejected`` (Graph said it expired or was revoked) and ask for a new one."""
        cache = getattr(get_app(self.settings), "token_cache", None)
        if cache is not None:
            for item in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                if item.get("secret") == rejected:
                    cache.remove_at(item)
        return acquire_token(self.settings)
