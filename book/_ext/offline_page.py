"""Keep every page of the book self-contained: no script that loads code from the network.

jupyter-book always enables sphinx-thebe, which adds (twice, hence a console error
``THEBE_JS_URL has already been declared``) an inline script naming a CDN and ``sphinx-thebe.js``.
The book has no live-code buttons, so both are dropped from every page. (Widget outputs would add
require.js and the widget manager from a CDN; ``nb_ipywidgets_js: {}`` in _config.yml stops that.)
"""

from __future__ import annotations

from typing import Any


def _is_thebe(script: Any) -> bool:
    name = str(getattr(script, "filename", script) or "")
    body = str(getattr(script, "attributes", {}).get("body", ""))
    return "thebe" in name or "THEBE_JS_URL" in body


def _drop_thebe(app, pagename, templatename, context, doctree) -> None:  # noqa: ANN001
    if "script_files" in context:
        context["script_files"] = [s for s in context["script_files"] if not _is_thebe(s)]


def setup(app) -> dict[str, Any]:  # noqa: ANN001
    app.connect("html-page-context", _drop_thebe)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
