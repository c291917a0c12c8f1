"""The dashboard in headless Chromium: both sign-ins, the at-risk home page, the timeline picture,
retrying a dead delivery (caseworker yes, viewer no), and axe-core on the main pages.

Chromium is Debian's ``chromium`` (``.ci/run`` installs it); axe-core comes from the npm
registry into ``.cache/npm`` (installed here with npm when missing). The tests skip, saying why,
only when no browser can be had.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ehcbridge.app import App
from ehcbridge.web.app import create_app

from .conftest import PASSWORD, Server, make_app

REPO = Path(__file__).resolve().parents[3]
CHROMIUM = os.environ.get("EHCBRIDGE_CHROMIUM", "/usr/bin/chromium")
AXE = REPO / ".cache" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-dev-shm-usage", "--disable-extensions", "--no-first-run",
        "--disable-component-update", "--disable-sync"]
# Read at import: the autouse fixture clears EHCBRIDGE_* variables before each test runs.
UPDATE_SCREENSHOTS = bool(os.environ.get("EHCBRIDGE_UPDATE_SCREENSHOTS"))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium through Playwright, or a skip saying why there is none."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe-core's script, installed from the npm registry into .cache/npm when missing."""
    if not AXE.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("axe-core is not installed and npm is missing (.ci/run installs both)")
        subprocess.run([npm, "install", "--prefix", str(AXE.parents[2]), "--no-audit",
                        "--no-fund", "--loglevel=error", "axe-core@4"], check=True,
                       capture_output=True, timeout=300)
    return AXE.read_text()


@pytest.fixture
def served(tmp_path: Path, seeded_db: Path, entra: Any) -> Iterator[tuple[App, str, Any]]:
    """The seeded app served by uvicorn on loopback, with Entra ID pointing at the fake."""
    fake, settings = entra
    shutil.copy(seeded_db, tmp_path / "serve.sqlite3")
    app = make_app(tmp_path, **settings)
    with Server(create_app(app)) as server:
        yield app, f"http://127.0.0.1:{server.port}", fake
    app.close()


def _sign_in(page: Any, base: str, name: str) -> None:
    page.goto(f"{base}/sign-in")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{base}/")


def _serious(page: Any, axe: str) -> list[str]:
    page.evaluate(axe)
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag', values:
            ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}});
        return r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length,
                                        help: v.help}));
    }""")
    return [f"{v['id']} ({v['impact']}, {v['nodes']} nodes): {v['help']}" for v in result
            if v["impact"] in ("serious", "critical")]


def test_caseworker_signs_in_sees_the_at_risk_review_opens_its_timeline_and_retries(
        browser: Any, served: tuple[App, str, Any], axe_source: str, tmp_path: Path) -> None:
    app, base, _fake = served
    shots = REPO / "docs" / "screenshots" if UPDATE_SCREENSHOTS else tmp_path
    shots.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1100, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.goto(f"{base}/")
    assert page.url == f"{base}/sign-in"
    assert _serious(page, axe_source) == [], "sign-in page"
    _sign_in(page, base, "cw@council.example")
    cookie = next(c for c in context.cookies() if c["name"] == "ehcbridge_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"

    row = page.get_by_role("row").filter(has_text="EHC-001")
    assert "At risk" in row.inner_text() or "at risk" in row.inner_text()
    assert "Invitations sent" in row.inner_text()
    assert page.get_by_role("heading", name="School 100001").is_visible()
    assert _serious(page, axe_source) == [], "home page"
    page.screenshot(path=str(shots / "home.png"), full_page=True)

    page.get_by_role("link", name="EHC-001").click()
    page.wait_for_url(f"{base}/reviews/EHC-001")
    picture = page.get_by_role("img", name="Timeline of review EHC-001")
    assert picture.is_visible()
    assert page.locator("svg g.duty-at_risk").count() == 1
    assert page.locator("svg g.duty-met").count() == 1
    assert _serious(page, axe_source) == [], "review page"
    page.screenshot(path=str(shots / "review.png"), full_page=True)
    page.get_by_role("link", name="Open the timeline picture").click()
    page.wait_for_url(f"{base}/reviews/EHC-001/timeline.svg")
    assert page.locator("svg title").text_content() == "Timeline of review EHC-001"
    assert page.locator('[data-duty="invitations_sent"] text').last.text_content() == "at risk"

    page.goto(f"{base}/deliveries")
    dead = app.store.deliveries(status="dead")[0]
    page.get_by_role("button", name=f"Retry delivery {dead.id}").click()
    page.wait_for_url(f"{base}/deliveries?retried={dead.id}")
    assert "queued again" in page.get_by_role("status").inner_text()
    assert app.store.deliveries(status="dead") == []
    assert [d.id for d in app.store.deliveries(status="pending")] == [dead.id]
    from ehcbridge.web.db import WebStore

    assert {v["user"] for v in WebStore(app.store).views("EHC-001")} == {"cw@council.example"}
    context.close()


def test_caseworker_records_that_the_amendments_are_not_made(
        browser: Any, served: tuple[App, str, Any], axe_source: str) -> None:
    from datetime import date, datetime

    from ehcbridge import transitions
    from ehcbridge.models import LONDON, Outcome

    app, base, _fake = served
    store, now = app.store, datetime(2027, 2, 1, 9, tzinfo=LONDON)
    store.schedule_meeting("EHC-001", start=datetime(2027, 1, 25, 10, tzinfo=LONDON),
                           end=datetime(2027, 1, 25, 11, tzinfo=LONDON), now=now)
    transitions.held(store, "EHC-001", now=now)
    transitions.decide(store, "EHC-001", outcome=Outcome.AMEND, reason="Outcomes updated",
                       on=date(2027, 1, 29), now=now)
    transitions.amendments(store, "EHC-001", on=date(2027, 1, 30), now=now)
    context = browser.new_context()
    page = context.new_page()
    _sign_in(page, base, "cw@council.example")
    page.goto(f"{base}/reviews/EHC-001")
    after = page.get_by_role("table", name="After the decision of the last review")
    assert "Final plan issued" in after.inner_text()
    assert _serious(page, axe_source) == [], "review page with the amendments form"
    page.get_by_label("Step").select_option("not_amended")
    page.get_by_label("Reason (when not amended: the family is told it)").fill(
        "Provision meets the needs")
    page.get_by_role("button", name="Record step").click()
    page.wait_for_url(f"{base}/reviews/EHC-001?done=not-amended")
    assert "The decision not to amend was recorded." in page.get_by_role("status").inner_text()
    assert page.get_by_role("table", name="After the decision of the last review").count() == 0
    context.close()


def test_a_viewer_cannot_retry(browser: Any, served: tuple[App, str, Any]) -> None:
    app, base, _fake = served
    context = browser.new_context()
    page = context.new_page()
    _sign_in(page, base, "viewer@council.example")
    page.goto(f"{base}/deliveries")
    assert "SMTP 550" in page.content()
    assert page.get_by_role("button", name="Retry delivery").count() == 0
    dead = app.store.deliveries(status="dead")[0]
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(f"{base}/deliveries/{dead.id}/retry", form={"csrf": token or ""},
                               max_redirects=0)
    assert answer.status == 403
    assert [d.id for d in app.store.deliveries(status="dead")] == [dead.id]
    context.close()


def test_signs_in_with_microsoft_entra_id(browser: Any, served: tuple[App, str, Any]) -> None:
    _app, base, fake = served
    fake.next_user = {"preferred_username": "jo@council.example", "name": "Jo",
                      "roles": ["viewer"]}
    context = browser.new_context(ignore_https_errors=True)  # the fake issuer's test CA
    page = context.new_page()
    page.goto(f"{base}/sign-in")
    page.get_by_role("button", name="Sign in with Microsoft").click()
    page.wait_for_url(f"{base}/")
    assert "Signed in as jo@council.example (viewer)" in page.locator(".ehc-user").inner_text()
    assert page.get_by_role("link", name="EHC-001").is_visible()
    context.close()
