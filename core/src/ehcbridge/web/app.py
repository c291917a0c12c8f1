"""The ``ehcbridge serve`` ASGI app: dashboard pages, the signed webhook, health and metrics.

Every page and API route needs a signed-in user except ``/healthz``, ``/readyz``,
``/metrics`` (no personal data), ``/openapi.json`` (a description) and the webhook, which is
authenticated by its HMAC signature instead.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any

import jinja2
from ehcbridge.store import DEAD, RETRYING, StoreError
from ehcbridge.web import data, svg, webhook
from ehcbridge.web.auth import EntraSignIn, RateLimiter, SignInError, check_password, new_token
from ehcbridge.web.db import Session, WebStore
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

if TYPE_CHECKING:
    from ehcbridge.app import App

log = logging.getLogger("ehcbridge.serve")
SESSION_COOKIE = "ehcbridge_session"
MAX_BODY_BYTES = 1024 * 1024
PRESIGNIN_COOKIE = "ehcbridge_signin"
Endpoint = Callable[[Request], Awaitable[Response]]
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'none'; frame-ancestors 'none'; form-action 'self' "
                               "https:",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class Forbidden(Exception):
    """The signed-in user's role may not do this."""


class Dashboard:
    """The state one served app shares: the App, its web tables, sign-in helpers, templates."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.settings = app.settings.serve
        self.web = WebStore(app.store)
        self.limiter = RateLimiter(self.settings.sign_in_attempts)
        self.entra = EntraSignIn(self.settings)
        self.engine_state: dict[str, datetime] = {}
        from ehcbridge.web.metrics import registry_for

        self.registry = registry_for(self)
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("ehcbridge.web", "templates"), autoescape=True,
            undefined=jinja2.StrictUndefined)
        self.templates.filters["label"] = svg.label
        self.templates.filters["owed"] = lambda o: {"la": "LA"}.get(o, svg.label(o))
        self.templates.filters["day"] = lambda d: f"{d:%d %b %Y}" if d else ""
        self.templates.filters["status"] = lambda s: svg.STYLE.get(str(s), ("", "", str(s)))[2]

    # Rendering -------------------------------------------------------------------------------

    def page(self, request: Request, name: str, status_code: int = 200,
             **context: Any) -> HTMLResponse:
        """A rendered page with the security headers."""
        session: Session | None = request.scope.get("ehcbridge.session")
        form_token = context.pop("csrf", "")  # the sign-in form's, before there is a session
        body = self.templates.get_template(name).render(
            user=session, csrf=session.csrf if session else form_token,
            path=request.url.path, entra=self.entra.enabled, **context)
        return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)

    def now(self) -> datetime:
        """Real time (sessions, signatures): never the app's fixed preview clock."""
        return datetime.now(UTC)

    def names_shown(self, session: Session) -> bool:
        """Names only for caseworkers, and only when serve.names_for_caseworkers is set."""
        return self.settings.names_for_caseworkers and session.role == "caseworker"


def _signed_in(role: str = "viewer") -> Callable[[Callable[[Dashboard, Request], Any]], Any]:
    """Require a live session (and the caseworker role when asked); pages redirect to sign-in."""

    def wrap(func: Callable[[Dashboard, Request], Any]) -> Callable[[Dashboard, Request], Any]:
        @functools.wraps(func)
        async def inner(dash: Dashboard, request: Request) -> Response:
            token = request.cookies.get(SESSION_COOKIE, "")
            session = await _run(dash.web.session, token, dash.now()) if token else None
            if session is None:
                if request.url.path.startswith("/api/"):
                    return JSONResponse({"error": "sign in first"}, status_code=401)
                return RedirectResponse("/sign-in", status_code=303)
            request.scope["ehcbridge.session"] = session
            if role == "caseworker" and session.role != "caseworker":
                return dash.page(request, "error.html", 403, title="You cannot do this",
                                 message="Only caseworkers can do this. Ask a caseworker or "
                                         "your administrator.")
            if request.method == "POST":
                form = await request.form()
                if not _same(str(form.get("csrf", "")), session.csrf):
                    return dash.page(request, "error.html", 403, title="Form expired",
                                     message="The form was out of date. Go back and try again.")
            result: Response = await func(dash, request)
            return result
        return inner
    return wrap


def _same(a: str, b: str) -> bool:
    import hmac

    return bool(a) and hmac.compare_digest(a.encode(), b.encode())


async def _run(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run blocking store code off the event loop."""
    return await asyncio.to_thread(func, *args, **kwargs)


# Sign-in -------------------------------------------------------------------------------------


async def sign_in_page(dash: Dashboard, request: Request) -> Response:
    """The sign-in form (local account, or the Entra ID button)."""
    token = new_token()
    response = dash.page(request, "sign_in.html", title="Sign in", csrf=token, error=None,
                         next=request.query_params.get("next", "/"))
    _set_cookie(dash, response, PRESIGNIN_COOKIE, token, 600)
    return response


async def sign_in(dash: Dashboard, request: Request) -> Response:
    """Check a local account's password, rate-limited by address and by name."""
    form = await request.form()
    name, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
    if not _same(str(form.get("csrf", "")), request.cookies.get(PRESIGNIN_COOKIE, "")):
        return await _sign_in_error(dash, request, "The form was out of date. Try again.", 403)
    client = request.client.host if request.client else "-"
    keys = (f"addr:{client}", f"user:{name.lower()}")
    wait = max(dash.limiter.blocked_for(k) for k in keys)
    if wait > 0:
        return await _sign_in_error(
            dash, request, f"Too many attempts. Try again in {int(wait // 60) + 1} minutes.", 429)
    user = await _run(dash.web.user, name) if name else None
    ok = await _run(check_password, user.password_hash if user else None, password)
    if user is None or not ok:
        for k in keys:
            dash.limiter.failed(k)
        log.info("sign-in refused for a local account")
        return await _sign_in_error(dash, request, "The user name or password is not right.", 401)
    dash.limiter.reset(keys[1])
    return await _open_session(dash, user.name, user.role)


async def _sign_in_error(dash: Dashboard, request: Request, message: str,
                         status: int) -> Response:
    token = new_token()
    response = dash.page(request, "sign_in.html", status, title="Sign in", csrf=token,
                         error=message, next="/")
    _set_cookie(dash, response, PRESIGNIN_COOKIE, token, 600)
    return response


async def _open_session(dash: Dashboard, name: str, role: str) -> Response:
    token, now = new_token(), dash.now()
    expires = now + timedelta(minutes=dash.settings.session_minutes)
    await _run(dash.web.open_session, token, name, role, new_token(), now, expires)
    response = RedirectResponse("/", status_code=303)
    _set_cookie(dash, response, SESSION_COOKIE, token, dash.settings.session_minutes * 60)
    response.delete_cookie(PRESIGNIN_COOKIE, path="/")
    return response


def _set_cookie(dash: Dashboard, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True,
                        secure=dash.settings.secure_cookies, samesite="lax")


async def entra_start(dash: Dashboard, request: Request) -> Response:
    """Send the browser to Entra ID."""
    if not dash.entra.enabled:
        return dash.page(request, "error.html", 404, title="Not set up",
                         message="Microsoft sign-in is not set up on this server.")
    try:
        url = await _run(dash.entra.start, str(request.url_for("entra_callback")))
    except SignInError as exc:
        return await _sign_in_error(dash, request, str(exc), 502)
    return RedirectResponse(url, status_code=303)


async def entra_callback(dash: Dashboard, request: Request) -> Response:
    """Finish the Entra ID sign-in."""
    try:
        name, role = await _run(dash.entra.finish, dict(request.query_params))
    except SignInError as exc:
        return await _sign_in_error(dash, request, str(exc), 401)
    return await _open_session(dash, name, role)


@_signed_in()
async def sign_out(dash: Dashboard, request: Request) -> Response:
    """Close the session."""
    await _run(dash.web.close_session, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# Pages ---------------------------------------------------------------------------------------


@_signed_in()
async def home(dash: Dashboard, request: Request) -> Response:
    """Reviews with duties at risk or missed, by school and due date; what is due soon."""
    today = dash.app.clock.now().date()
    rows = await _run(data.attention, dash.app)
    counts = await _run(data.due_counts, dash.app, today)
    schools: dict[str, list[data.AttentionRow]] = {}
    for row in rows:
        schools.setdefault(row.school_urn or "School not known", []).append(row)
    return dash.page(request, "home.html", title="Reviews needing attention", schools=schools,
                     counts=counts, today=today, term=data.term_bounds(today))


@_signed_in()
async def review(dash: Dashboard, request: Request) -> Response:
    """One review: its timeline picture, invitees and responses, deliveries."""
    case_id = request.path_params["case_id"]
    try:
        case = await _run(dash.app.store.case, case_id)
    except StoreError:
        return dash.page(request, "error.html", 404, title="Review not found",
                         message="There is no review with that case reference.")
    session: Session = request.scope["ehcbridge.session"]
    await _run(dash.web.record_view, session.user, case_id)
    duties = await _run(dash.app.store.duties, case_id)
    deliveries = await _run(dash.app.store.deliveries, case_id=case_id)
    today = dash.app.clock.now().date()
    return dash.page(request, "review.html", title=f"Review {case_id}", case=case,
                     duties=duties, deliveries=deliveries, today=today,
                     after=await _run(data.after_decision, dash.app, case_id, case.review.id),
                     views=await _run(_views_received, dash, case_id),
                     removed=await _run(dash.app.store.removed_from, case_id),
                     picture=svg.timeline(case_id, duties, today),
                     names=dash.names_shown(session),
                     message=DONE.get(done, done) if (done := request.query_params.get("done"))
                     else None)


@_signed_in()
async def timeline_svg(dash: Dashboard, request: Request) -> Response:
    """The timeline picture on its own."""
    case_id = request.path_params["case_id"]
    try:
        duties = await _run(dash.app.store.duties, case_id)
    except StoreError:
        return PlainTextResponse("no such review", status_code=404)
    session: Session = request.scope["ehcbridge.session"]
    await _run(dash.web.record_view, session.user, case_id)
    body = svg.timeline(case_id, duties, dash.app.clock.now().date())
    return Response(body, media_type="image/svg+xml", headers=SECURITY_HEADERS)


def _views_received(dash: Dashboard, case_id: str) -> list[dict[str, Any]] | None:
    """Views received (``Store.views`` of issue 13's notices), or None before it is there."""
    reader = getattr(dash.app.store, "views", None)
    if not callable(reader):
        return None
    return [{"contributor": getattr(v, "contributor", ""), "role": getattr(v, "role", None),
             "received": getattr(v, "received_on", None) or getattr(v, "received", None)}
            for v in reader(case_id)]


@_signed_in("caseworker")
async def record_views(dash: Dashboard, request: Request) -> Response:
    """Record views received, as ``ehcbridge review views CASE --from WHO --on DATE``."""
    case_id = request.path_params["case_id"]
    writer = getattr(dash.app.store, "add_views", None)
    if not callable(writer):
        return dash.page(request, "error.html", 501, title="Not available yet",
                         message="Recording views needs the notices module (ehcbridge review "
                                 "views); this server does not have it.")
    form = await request.form()
    sender = str(form.get("from", "")).strip()
    try:
        from ehcbridge.intake import parse_date

        received = parse_date(str(form.get("on", "")))
    except ValueError as exc:
        return dash.page(request, "error.html", 422, title="That could not be recorded",
                         message=f"on {exc}")
    if not sender:
        return dash.page(request, "error.html", 422, title="That could not be recorded",
                         message="from is required")

    def record() -> None:
        current = dash.app.store.case(case_id)
        key = sender.lower()  # the invitee it came from, as the CLI matches it
        invitee = next((i for i in current.invitees
                        if key in {(i.email or "").lower(), (i.name or "").lower()}), None)
        writer(case_id, contributor=sender, role=invitee.role.value if invitee else None,
               received_on=received, files=[], now=dash.app.clock.now())

    try:
        await _run(record)
    except StoreError as exc:
        return dash.page(request, "error.html", 409, title="Not recorded", message=str(exc))
    return RedirectResponse(f"/reviews/{case_id}?done=views", status_code=303)


@_signed_in("caseworker")
async def record_report(dash: Dashboard, request: Request) -> Response:
    """Record that the review report was sent (as ``ehcbridge review report``)."""
    return await _review_action(dash, request, "report.sent")


@_signed_in("caseworker")
async def record_decision(dash: Dashboard, request: Request) -> Response:
    """Record the LA's decision (as ``ehcbridge review decide``)."""
    return await _review_action(dash, request, "decision.recorded")


# What the banner says was recorded, for the review page's ``done`` keys that are not words.
DONE = {"amendments": "sending of the proposed amendments", "final-plan": "final plan",
        "not-amended": "decision not to amend"}
# The amendments form's steps, as the webhook's event types.
AMENDMENT_STEPS = {"proposed": "amendments.proposed", "final": "final_plan.issued",
                   "not_amended": "amendments.not_made"}


@_signed_in("caseworker")
async def record_amendments(dash: Dashboard, request: Request) -> Response:
    """Record a step after an amend decision (as ``ehcbridge review amendments``,
    ``final-plan`` or ``not-amended``)."""
    step = str((await request.form()).get("step", ""))
    if step not in AMENDMENT_STEPS:
        return dash.page(request, "error.html", 422, title="That could not be recorded",
                         message="step is not one of " + ", ".join(AMENDMENT_STEPS))
    return await _review_action(dash, request, AMENDMENT_STEPS[step])


@_signed_in("caseworker")
async def record_uninvite(dash: Dashboard, request: Request) -> Response:
    """Remove someone from the review's invitees (as ``ehcbridge review uninvite``)."""
    return await _review_action(dash, request, "invitee.removed")


async def _review_action(dash: Dashboard, request: Request, kind: str) -> Response:
    case_id = request.path_params["case_id"]
    form = await request.form()
    values: dict[str, Any] = {"case_id": case_id}
    if kind == "invitee.removed":  # one box: an address, or the name of a letter-only family
        who = str(form.get("who", "")).strip()
        values["email" if "@" in who else "name"] = who
    else:
        # The event type's own fields (the case comes from the page's address).
        fields = [k for k in webhook.TYPES[kind][0] if k != "case_id"]
        values.update({k: str(form.get(k, "")).strip() for k in fields if form.get(k)})
    try:
        event = webhook.parse(json.dumps({"id": "form", "type": kind, "data": values}).encode())
        await _run(webhook.apply, dash.app, event)
    except webhook.WebhookError as exc:
        return dash.page(request, "error.html", 422 if exc.status == 422 else 409,
                         title="That could not be recorded",
                         message=(f"{(exc.field or '').removeprefix('data.')} " if exc.field
                                  else "") + exc.message)
    done = {"report.sent": "report", "decision.recorded": "decision",
            "invitee.removed": "removal", "amendments.proposed": "amendments",
            "final_plan.issued": "final-plan", "amendments.not_made": "not-amended"}[kind]
    return RedirectResponse(f"/reviews/{case_id}?done={done}", status_code=303)


@_signed_in()
async def deliveries(dash: Dashboard, request: Request) -> Response:
    """Dead and retrying deliveries."""
    dead = await _run(dash.app.store.deliveries, status=DEAD)
    retrying = await _run(dash.app.store.deliveries, status=RETRYING)
    return dash.page(request, "deliveries.html", title="Deliveries", dead=dead,
                     retrying=retrying, message=request.query_params.get("retried"))


@_signed_in("caseworker")
async def retry(dash: Dashboard, request: Request) -> Response:
    """Queue a dead delivery again (as ``ehcbridge deliveries retry``)."""
    try:
        row = await _run(dash.app.store.retry_delivery, int(request.path_params["id"]),
                         dash.app.clock.now())
    except StoreError as exc:
        return dash.page(request, "error.html", 409, title="Not retried", message=str(exc))
    return RedirectResponse(f"/deliveries?retried={row.id}", status_code=303)


@_signed_in()
async def plugins(dash: Dashboard, request: Request) -> Response:
    """What ``ehcbridge doctor`` reports."""
    results = await _run(dash.app.doctor)
    revision = await _run(dash.app.store.revision)
    return dash.page(request, "plugins.html", title="Plugins", results=results,
                     store=f"{dash.app.store.backend}, schema {revision}")


@_signed_in()
async def figures(dash: Dashboard, request: Request) -> Response:
    """Annual-review figures from the duties, with their chart."""
    figs = await _run(data.figures, dash.app)
    return dash.page(request, "figures.html", title="Figures", figures=figs,
                     chart=svg.bars(figs["totals"], "Duties by status"))


# API, health, metrics ------------------------------------------------------------------------


async def events(dash: Dashboard, request: Request) -> Response:
    """The signed webhook: verify, parse, apply once, answer 202 with the id."""
    body = await request.body()
    try:
        webhook.verify(dash.settings.webhook_secret.get_secret_value(),
                       {k.lower(): v for k, v in request.headers.items()}, body, time.time())
        event = webhook.parse(body)
    except webhook.WebhookError as exc:
        return JSONResponse(exc.body(), status_code=exc.status)
    if not await _run(dash.web.claim_event, event.id, event.type, dash.now()):
        return JSONResponse({"id": event.id, "status": "duplicate"}, status_code=202)
    try:
        await _run(webhook.apply, dash.app, event)
    except webhook.WebhookError as exc:
        await _run(dash.web.release_event, event.id)
        return JSONResponse(exc.body(), status_code=exc.status)
    except Exception:
        await _run(dash.web.release_event, event.id)
        raise
    log.info("webhook event %s applied", event.type)
    return JSONResponse({"id": event.id, "status": "accepted"}, status_code=202)


async def healthz(dash: Dashboard, request: Request) -> Response:
    """The process is up."""
    return JSONResponse({"status": "ok"})


def readiness(dash: Dashboard) -> tuple[bool, dict[str, Any]]:
    """The store answers, its schema is current, the engine ticked recently (when known)."""
    from ehcbridge.web.metrics import migrations_head

    checks: dict[str, Any] = {}
    ok = True
    try:
        revision = dash.app.store.revision()
        checks["store"] = "ok"
        head = migrations_head()
        checks["migrations"] = "current" if revision == head else f"at {revision}, head {head}"
        ok = revision == head
    except Exception as exc:
        checks["store"] = f"failed: {type(exc).__name__}"
        return False, checks
    tick = data.last_tick(dash.app, dash.engine_state)
    if tick is None:
        checks["engine"] = "unknown"
    else:
        age = (dash.now() - tick).total_seconds()
        fresh = age <= dash.settings.engine_stale_seconds
        checks["engine"] = f"ticked {int(age)} s ago" + ("" if fresh else " (stale)")
        ok = ok and fresh
    return ok, checks


async def readyz(dash: Dashboard, request: Request) -> Response:
    """200 when ready, 503 naming what is not."""
    ok, checks = await _run(readiness, dash)
    return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks},
                        status_code=200 if ok else 503)


async def metrics(dash: Dashboard, request: Request) -> Response:
    """Prometheus text format."""
    from ehcbridge.web.metrics import render

    body, content_type = await _run(render, dash)
    return Response(body, media_type=content_type)


async def openapi(dash: Dashboard, request: Request) -> Response:
    """The OpenAPI document of the API (the same as docs/openapi.json)."""
    from ehcbridge.web.openapi import document

    return JSONResponse(document())


# The app -------------------------------------------------------------------------------------


def create_app(app: App) -> Starlette:
    """The ASGI app for ``app``; plugins add routes through the ``register_routes`` hook."""
    dash = Dashboard(app)

    def r(path: str, func: Callable[[Dashboard, Request], Awaitable[Response]],
          methods: tuple[str, ...] = ("GET",), name: str | None = None) -> Route:
        async def endpoint(request: Request) -> Response:
            return await func(dash, request)
        return Route(path, endpoint, methods=list(methods), name=name or func.__name__)

    routes: list[BaseRoute] = [
        r("/healthz", healthz), r("/readyz", readyz), r("/metrics", metrics),
        r("/openapi.json", openapi),
        r("/api/v1/events", events, ("POST",)),
        r("/sign-in", sign_in_page), r("/sign-in", sign_in, ("POST",), "sign_in_post"),
        r("/sign-in/entra", entra_start), r("/auth/callback", entra_callback),
        r("/sign-out", sign_out, ("POST",)),
        r("/", home), r("/reviews/{case_id}", review),
        r("/reviews/{case_id}/timeline.svg", timeline_svg),
        r("/reviews/{case_id}/report", record_report, ("POST",)),
        r("/reviews/{case_id}/views", record_views, ("POST",)),
        r("/reviews/{case_id}/decision", record_decision, ("POST",)),
        r("/reviews/{case_id}/amendments", record_amendments, ("POST",)),
        r("/reviews/{case_id}/uninvite", record_uninvite, ("POST",)),
        r("/deliveries", deliveries), r("/deliveries/{id:int}/retry", retry, ("POST",)),
        r("/plugins", plugins), r("/figures", figures),
        Mount("/static", StaticFiles(directory=str(resources.files("ehcbridge.web") / "static")),
              name="static"),
    ]
    routes += _plugin_routes(dash)
    # Events and forms are small; a bigger body is refused (413) before it is read into memory.
    starlette = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_allowed},
                          max_body_size=MAX_BODY_BYTES)
    starlette.state.dashboard = dash
    return starlette


async def _not_found(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": "not found"}, status_code=404)
    return PlainTextResponse("Page not found", status_code=404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": "method not allowed"}, status_code=405)


class RouteRegistry:
    """What ``register_routes`` receives: add pages or API routes under /plugins/<name>/."""

    def __init__(self, dash: Dashboard, plugin: str) -> None:
        self.dash, self.plugin = dash, plugin
        self.routes: list[BaseRoute] = []

    def add(self, path: str, endpoint: Callable[[Request], Awaitable[Response]], *,
            methods: tuple[str, ...] = ("GET",), role: str = "viewer") -> None:
        """Serve ``endpoint`` at /plugins/<name><path>, for signed-in users of ``role``."""
        if role not in ("viewer", "caseworker"):
            raise ValueError(f"role must be viewer or caseworker, not {role!r}")

        @_signed_in(role)
        async def guarded(dash: Dashboard, request: Request) -> Response:
            return await endpoint(request)

        async def route(request: Request) -> Response:
            result: Response = await guarded(self.dash, request)
            return result

        self.routes.append(Route(f"/plugins/{self.plugin}{path}", route, methods=list(methods)))


def _plugin_routes(dash: Dashboard) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    manager = dash.app.plugins
    manager.load()
    for name in manager.implementers("register_routes"):
        registry = RouteRegistry(dash, name)
        for outcome in manager.call_each("register_routes", plugins=[name], routes=registry,
                                         ctx=dash.app.plugin_context):
            if outcome.error is not None:
                log.warning("plugin %s could not add its routes: %s", outcome.plugin,
                            outcome.error)
        routes += registry.routes
    return routes
