"""The reference reviewer console, served from its built files, and `signoff dev`'s demo users.

The console (`console/`, TypeScript built by Vite) is a single-page app that uses only the
public GraphQL schema. Its build is served at `/console/`: a file that exists is sent as it is,
any other path under `/console/` without a file extension gets `index.html`, so the app's own
routes (`/console/item/…`, `/console/decide?token=…`) load on a reload or from a link. Nothing
is served outside the build directory. The item link every notification carries
(`public_url` + `/items/<uuid>`, minted by workers that serve no console) redirects to the
item's page in the console.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from litestar import Router, get
from litestar.exceptions import NotFoundException
from litestar.response import File, Redirect

from signoff.api import ids

CONSOLE_PATH = "/console"
ITEM_LINK_PATH = "/items/{item_id:uuid}"
"""Where notifications link an item (`services/notifications.py`)."""
DEMO_USERS_PATH = "/dev/demo-users"
IMMUTABLE = "public, max-age=31536000, immutable"


def _file_in(root: Path, relative: str) -> Path | None:
    """`relative` inside `root` when it names an existing file there; never a path outside."""
    candidate = (root / relative).resolve()
    if candidate.is_relative_to(root) and candidate.is_file():
        return candidate
    return None


def console_routes(directory: str, *, redirect_root: bool) -> list[Any]:
    """Routes serving the console built into `directory` (and `/` → `/console/` when asked)."""
    root = Path(directory).resolve()

    def send(relative: str) -> File:
        relative = relative.lstrip("/")
        found = _file_in(root, relative)
        if found is None:
            if "." in relative.rsplit("/", 1)[-1]:
                raise NotFoundException(f"no file {relative!r} in the console")
            # an app route (/console/item/…): the page, whose script reads the path
            found = _file_in(root, "index.html")
            if found is None:
                raise NotFoundException("the console is not built")
        # the page changes with every build; the assets it names are hashed and never change
        immutable = relative.startswith("assets/") and found.name != "index.html"
        return File(
            found,
            filename=found.name,
            content_disposition_type="inline",
            headers={"Cache-Control": IMMUTABLE if immutable else "no-cache"},
        )

    @get("/", include_in_schema=False, sync_to_thread=False)
    def index() -> File:
        return send("index.html")

    @get("/{path:path}", include_in_schema=False, sync_to_thread=False)
    def anything(path: str) -> File:
        return send(path)

    @get(ITEM_LINK_PATH, include_in_schema=False, sync_to_thread=False)
    def item_link(item_id: UUID) -> Redirect:
        # a notification's "open the item": the console's page of it (which checks access)
        target = f"{CONSOLE_PATH}/item/{ids.encode('WorkflowItem', item_id)}"
        return Redirect(path=target, status_code=303, headers={"Cache-Control": "no-store"})

    routes: list[Any] = [Router(path=CONSOLE_PATH, route_handlers=[index, anything]), item_link]
    if redirect_root:

        @get("/", include_in_schema=False, sync_to_thread=False)
        def root_redirect() -> Redirect:
            return Redirect(path=f"{CONSOLE_PATH}/")

        routes.append(root_redirect)
    return routes


def demo_users_route(users: Sequence[dict[str, Any]]) -> Any:
    """`GET /dev/demo-users`: the demo users with their development tokens, for the console's
    sign-in. Only `signoff dev` adds it (it fills `users` once the demo data is seeded)."""

    @get(DEMO_USERS_PATH, include_in_schema=False, sync_to_thread=False)
    def demo_users() -> dict[str, Any]:
        return {"users": list(users)}

    return demo_users
