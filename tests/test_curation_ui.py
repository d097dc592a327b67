"""The curation panel of the analyst page in headless Chromium (issue 11 item 6):
an analyst pins a new title and moves a statement into a new theme; the theme
view shows the title at once and the panel lists both events. Screenshots go
to ``PEERLEARN_UI_SHOTS`` (or a temporary folder)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_ui import _Browser, _Server, _shots_dir, needs_chromium
from ui_seed import seed

from peerlearn.keys import create_key
from peerlearn.settings import Settings
from service.ports import free_port


@pytest.fixture(scope="module")
def curation_server(
    database_url: str, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[_Server, dict[str, Any]]]:
    seeded = seed(database_url, model_dir)
    settings = Settings(
        database_url=database_url,
        model_dir=model_dir,
        home=tmp_path_factory.mktemp("curation-ui-home"),
        temporal_address=f"127.0.0.1:{free_port()}",
        load_demo=False,
    )
    with _Server(settings) as srv:
        yield srv, seeded


@pytest.mark.browser
@needs_chromium
def test_curation_panel_in_chromium(
    curation_server: tuple[_Server, dict[str, Any]], database_url: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    server, _seeded = curation_server
    _, key = create_key(database_url, "analyst", ["*"], name="ui-curation")
    _, admin = create_key(database_url, "admin", name="ui-curation-admin")
    shots = _shots_dir(tmp_path)
    with sync_playwright() as pw:
        b = _Browser(pw, server.url)
        page = b.page
        try:
            b.login(admin)
            page.goto(f"{server.url}/ui/#/themes/th-crisis")
            panel = page.locator("#curation-panel")
            expect(panel).to_be_visible()
            expect(panel.locator(".curation-statements tbody tr").first).to_be_visible()
            page.fill("#curation-title-form input[name=title]", "Keeping members during a crisis")
            page.click("#curation-title-form button[type=submit]")
            expect(page.locator("#theme-title")).to_have_text("Keeping members during a crisis")
            expect(page.locator("#curation-events")).to_contain_text("ThemeRenamed")
            panel.locator(".curation-pick").first.check()
            page.fill("#curation-move-form input[name=new_title]", "Staff turnover")
            page.click("#curation-move-form button[type=submit]")
            expect(page.locator("#curation-events")).to_contain_text("Staff turnover")
            page.mouse.move(0, 0)
            page.screenshot(path=shots / "7-curation.png", full_page=True)
            panel.screenshot(path=shots / "7-curation-panel.png")
            assert not b.problems, b.problems
        finally:
            b.close(shots)
    assert key  # an analyst key of every programme is accepted (grant checked server-side)
