"""GraphiQL is served from the package: its page references only local assets, all served."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser

from signoff.api.graphiql import ASSETS_DIR, ASSETS_PATH

HTML = {"Accept": "text/html"}


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.urls.append(value)


def _references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    return parser.urls


def _recorded_digests() -> dict[str, str]:
    lines = (ASSETS_DIR / "VERSIONS").read_text().splitlines()
    pairs = (line.split() for line in lines if re.fullmatch(r"[0-9a-f]{64}  \S+", line))
    return {name: digest for digest, name in pairs}


async def test_the_page_references_only_local_assets_and_each_is_served(client):
    page = await client.get("/graphql", headers=HTML)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    urls = _references(page.text)
    assert urls, "the page loads no asset"
    assert all(u.startswith(ASSETS_PATH + "/") for u in urls), urls
    assert "://" not in page.text.replace("ws", "")  # no absolute URL at all, no CDN
    digests = _recorded_digests()
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        name = url.rsplit("/", 1)[1]
        assert asset.content == (ASSETS_DIR / name).read_bytes()
        assert hashlib.sha256(asset.content).hexdigest() == digests[name]
        expected = "text/css" if name.endswith(".css") else "javascript"
        assert expected in asset.headers["content-type"]


async def test_the_vendored_assets_match_their_recorded_digests():
    digests = _recorded_digests()
    assert set(digests) == {p.name for p in ASSETS_DIR.iterdir() if p.suffix in (".js", ".css")}
    for name, digest in digests.items():
        assert hashlib.sha256((ASSETS_DIR / name).read_bytes()).hexdigest() == digest


async def test_without_graphiql_neither_page_nor_assets_are_served(app_client):
    async with app_client(graphiql=False) as http:
        page = await http.get("/graphql", headers=HTML)
        assert "graphiql" not in page.text.lower()
        asset = await http.get(f"{ASSETS_PATH}/graphiql.min.js")
        assert asset.status_code == 404
