"""GraphiQL served from the package: the page and its assets, with no CDN.

The browser builds of GraphiQL and React are copied from npm into `api/graphiql/` by
`scripts/vendor-graphiql` and committed, so GraphiQL works offline and installing signoff needs
no Node.js. The page sends the headers of GraphiQL's header editor (`{"Authorization": "Bearer
…"}`) with every HTTP request and as the `connection_init` payload of subscriptions.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

ASSETS_DIR = Path(__file__).parent / "graphiql"
ASSETS_PATH = "/graphql/assets"
SCRIPTS = ("react.production.min.js", "react-dom.production.min.js", "graphiql.min.js")
STYLESHEETS = ("graphiql.min.css",)

_EXAMPLE = """# signoff GraphiQL. Put a bearer token in the Headers tab below:
#   {"Authorization": "Bearer <token>"}
# (in development: `signoff token --user alice`). Subscriptions use the same headers.
query Inbox {
  inbox(first: 10) {
    eventCursor
    edges { node { id title state priority } }
  }
}
"""

_PAGE = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>signoff GraphiQL</title>
    <style>body {{ margin: 0; }} #graphiql {{ height: 100vh; }}</style>
{stylesheets}
{scripts}
  </head>
  <body>
    <div id="graphiql">Loading…</div>
    <script>
      const url = new URL("/graphql", window.location.href).toString();
      const subscriptionUrl = url.replace(/^http/, "ws");
      // Subscriptions authenticate in connection_init: pass the editor's headers there too.
      function fetcher(params, options) {{
        const headers = (options && options.headers) || {{}};
        return GraphiQL.createFetcher({{
          url, subscriptionUrl, headers: {{}}, wsConnectionParams: headers,
        }})(params, options);
      }}
      const root = ReactDOM.createRoot(document.getElementById("graphiql"));
      root.render(React.createElement(GraphiQL, {{
        fetcher,
        defaultQuery: {example},
        defaultHeaders: '{{"Authorization": "Bearer "}}',
        isHeadersEditorEnabled: true,
        shouldPersistHeaders: false,
        defaultEditorToolsVisibility: "headers",
      }}));
    </script>
  </body>
</html>
"""


def graphiql_page() -> str:
    """The HTML of GraphiQL, loading only the assets served under `ASSETS_PATH`."""
    stylesheets = "\n".join(
        f'    <link rel="stylesheet" href="{ASSETS_PATH}/{name}" />' for name in STYLESHEETS
    )
    scripts = "\n".join(f'    <script src="{ASSETS_PATH}/{name}"></script>' for name in SCRIPTS)
    example = '"' + _EXAMPLE.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return _PAGE.format(stylesheets=stylesheets, scripts=scripts, example=example)


GRAPHIQL_PAGE = graphiql_page()


def graphiql_assets() -> Router:
    """The route serving GraphiQL's assets from the package (cached for a day)."""
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[ASSETS_DIR],
        name="graphiql-assets",
        cache_control=CacheControlHeader(max_age=86400),
    )
