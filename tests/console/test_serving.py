"""How the API serves the built console: its files, its routes, nothing outside its directory;
the root redirect and the demo users only in development."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff.api import ids
from signoff.app import create_app
from tests.conftest import running_app


@pytest.fixture
def build(tmp_path: Path) -> Path:
    """A console build: the page and one hashed asset, and a file beside it that is not."""
    root = tmp_path / "console"
    root.mkdir()
    (root / "assets").mkdir()
    (root / "index.html").write_text('<!doctype html><div id="root"></div>')
    (root / "assets" / "index-abc123.js").write_text("console.log('hi')")
    (root.parent / f"{root.name}-secret.txt").write_text("not the console's")
    return root


async def test_files_and_app_routes_are_served(app_client: Any, build: Path) -> None:
    async with app_client(console_dir=str(build)) as http:
        for path in ("/console", "/console/", "/console/item/V29ya2", "/console/decide"):
            page = await http.get(path)
            assert page.status_code == 200, path
            assert page.headers["content-type"].startswith("text/html")
            assert page.headers["cache-control"] == "no-cache"
            assert "attachment" not in page.headers.get("content-disposition", "")
        asset = await http.get("/console/assets/index-abc123.js")
        assert asset.status_code == 200 and asset.text == "console.log('hi')"
        assert "immutable" in asset.headers["cache-control"]
        assert "javascript" in asset.headers["content-type"]


OUTSIDE_OR_MISSING = (
    "/console/assets/missing.js",
    "/console/../pyproject.toml",
    "/console/%2e%2e/pyproject.toml",
    "/console/..%2f{name}-secret.txt",
    "/console/%2e%2e%2f{name}-secret.txt",
)


async def test_nothing_outside_the_build_and_no_page_for_a_missing_file(
    app_client: Any, build: Path
) -> None:
    # one application for every path: starting one is slow on a busy machine
    async with app_client(console_dir=str(build)) as http:
        for path in OUTSIDE_OR_MISSING:
            answer = await http.get(path.format(name=build.name))
            assert answer.status_code == 404, path
            assert "not the console's" not in answer.text


async def test_the_root_redirects_to_the_console_in_development_only(
    app_client: Any, build: Path
) -> None:
    async with app_client(console_dir=str(build)) as http:
        root = await http.get("/")
        assert root.status_code in (302, 307) and root.headers["location"] == "/console/"
    async with app_client(console_dir=str(build), environment="production", graphiql=False) as http:
        assert (await http.get("/")).status_code == 404
        assert (await http.get("/console/")).status_code == 200
    async with app_client() as http:
        assert (await http.get("/console/")).status_code == 404


async def test_demo_users_only_where_signoff_dev_passes_them(settings: Any) -> None:
    users = [{"user": "bob", "roles": ["change-approver"], "token": "t"}]
    for environment, expected in (("development", 200), ("production", 404)):
        changed = dataclasses.replace(settings, environment=environment)
        application = create_app(changed, demo_users=users)
        async with running_app(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                answer = await http.get("/dev/demo-users")
                assert answer.status_code == expected
                if expected == 200:
                    assert answer.json() == {"users": users}
    async with running_app(create_app(settings)) as application:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/dev/demo-users")).status_code == 404


async def test_a_notifications_item_link_opens_the_items_page_in_the_console(
    app_client: Any, build: Path
) -> None:
    item_id = uuid.uuid4()
    async with app_client(console_dir=str(build)) as http:
        opened = await http.get(f"/items/{item_id}")
        assert opened.status_code == 303
        location = opened.headers["location"]
        assert location == f"/console/item/{ids.encode('WorkflowItem', item_id)}"
        assert ids.decode(location.rsplit("/", 1)[1]) == ("WorkflowItem", str(item_id))
        assert (await http.get(location)).status_code == 200  # the page; it checks access
        assert (await http.get("/items/not-a-uuid")).status_code in (400, 404)
    async with app_client() as http:  # no console: nothing there, as before
        assert (await http.get(f"/items/{item_id}")).status_code == 404
