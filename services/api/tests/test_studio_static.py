"""Run Studio's static files: served from the API without a key, with their content types and
a strict Content-Security-Policy; nothing outside the three assets is reachable."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import pytest
from stepwise_api.studio_routes import ASSETS


async def test_index_served_without_a_key(api: Any) -> None:
    resp = await api.get("/studio/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert resp.charset == "utf-8"
    body = await resp.text()
    assert '<script type="module" src="studio.js">' in body
    assert '<link rel="stylesheet" href="studio.css">' in body
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_api_root_redirects_to_the_studio(api: Any) -> None:
    resp = await api.get("/", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/studio/"
    followed = await api.get("/")
    assert followed.status == 200 and "text/html" in followed.headers["Content-Type"]


async def test_studio_without_slash_redirects(api: Any) -> None:
    resp = await api.get("/studio", allow_redirects=False)
    assert resp.status == 308
    assert resp.headers["Location"] == "/studio/"


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("index.html", "text/html"), ("studio.js", "text/javascript"), ("studio.css", "text/css")],
)
async def test_assets_have_their_content_types(api: Any, name: str, content_type: str) -> None:
    resp = await api.get(f"/studio/{name}")
    assert resp.status == 200
    assert resp.content_type == content_type
    on_disk = (resources.files("stepwise_api") / "studio" / name).read_bytes()
    assert await resp.read() == on_disk


@pytest.mark.parametrize(
    "path",
    [
        "/studio/app.py",
        "/studio/..%2Fapp.py",
        "/studio/%2e%2e%2fstudio_routes.py",
        "/studio/studio.js.map",
        "/studio/sub/studio.js",
    ],
)
async def test_nothing_else_is_served(api: Any, path: str) -> None:
    resp = await api.get(path)
    assert resp.status == 404
    problem = await resp.json(content_type=None)
    assert problem["code"] == "NOT_FOUND"


async def test_api_still_requires_a_key(api: Any) -> None:
    # The page is public, the data is not.
    resp = await api.get("/api/workflow-runs")
    assert resp.status == 401


def test_every_asset_referenced_by_the_page_exists() -> None:
    folder = resources.files("stepwise_api") / "studio"
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == sorted(ASSETS)
    html = (folder / "index.html").read_text()
    for ref in re.findall(r'(?:src|href)="([^"#]+)"', html):
        assert ref in ASSETS, ref


def test_no_legacy_run_controls_in_the_page() -> None:
    """No Retry, (engine) Resume or Requeue control, and no call to such a route: the only
    resume is the quota resume, which posts to /quota-resume."""
    folder = resources.files("stepwise_api") / "studio"
    script = (folder / "studio.js").read_text()
    html = (folder / "index.html").read_text()
    for text in (script, html):
        assert not re.search(r"/(retry|resume|requeue)\b", text, re.IGNORECASE)
        assert not re.search(r">\s*(retry|resume|requeue)\s*<", text, re.IGNORECASE)
    assert '"/quota-resume"' in script
