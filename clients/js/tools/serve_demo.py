"""`livecart demo` with the demo pages mounted, whatever the app factory does yet.

Used by tools/screenshots.py and for trying the pages by hand:

    .venv/bin/python clients/js/tools/serve_demo.py --port 8080 --data-dir /tmp/lc

Takes every option `livecart demo` takes. Once the app factory calls
`add_page_routes` itself (it is idempotent), this is the same as `livecart demo`.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _add_page_routes():
    try:
        from livecart.server.pages import add_page_routes
    except ImportError:  # a server copy without pages.py: use the repo's
        spec = importlib.util.spec_from_file_location("livecart_pages", REPO / "server" / "pages.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        add_page_routes = module.add_page_routes
    return add_page_routes


def main() -> None:
    from livecart.server import app as app_module
    from livecart.server.cli import main as cli

    add_page_routes = _add_page_routes()
    create_app = app_module.create_app

    def create_app_with_pages(config):
        app = create_app(config)
        add_page_routes(app)
        return app

    app_module.create_app = create_app_with_pages
    cli(["demo", *sys.argv[1:]], prog_name="livecart")


if __name__ == "__main__":
    main()
