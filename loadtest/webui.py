"""A "Split" tab in Locust's web UI, through the UI's own extension points.

* ``template_args["extendedTabs"]`` / ``["extendedTables"]`` declare the tab and its table columns;
* the rows ride along in the ``extended_stats`` field of the ``/stats/requests`` answer the UI already polls;
* ``GET /splitproof/split`` returns the same snapshot as JSON (scripts, tests).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

TAB_KEY = "splitproof"
SPLIT_PATH = "/splitproof/split"
COLUMNS = [
    {"key": "version", "title": "Version"},
    {"key": "expected", "title": "Expected"},
    {"key": "count", "title": "Responses"},
    {"key": "share", "title": "Share"},
    {"key": "interval", "title": "Interval (anytime-valid)"},
]


def snapshot(session: Any) -> dict[str, Any]:
    """The live split (or just the record count when no expected split was given)."""
    live = session.live
    if live is None:
        return {"expected": None, "rows": [], "records": session.recorder.received,
                "status": "no expected split given (--expected/--weights)", "decided": False}
    data = live.snapshot()
    data["records"] = session.recorder.received
    return data


def table_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The tab's rows: the versions, the unattributed, then the sequential status as a last row."""
    rows = list(data["rows"])
    rows.append({"version": "verdict", "expected": "", "count": data["records"], "share": "",
                 "interval": data["status"]})
    return rows


def install(web_ui: Any, get_session: Callable[[], Any]) -> None:
    from flask import Response, jsonify, request

    web_ui.template_args["extendedTabs"] = [{"title": "Split", "key": TAB_KEY}]
    web_ui.template_args["extendedTables"] = [{"key": TAB_KEY, "structure": COLUMNS}]
    app = web_ui.app

    @app.after_request
    def add_split(response: Response) -> Response:
        if not request.path.endswith("/stats/requests") or response.status_code != 200:
            return response
        try:
            payload = json.loads(response.get_data(as_text=True))
        except ValueError:
            return response
        payload["extended_stats"] = [{"key": TAB_KEY, "data": table_rows(snapshot(get_session()))}]
        response.set_data(json.dumps(payload))
        return response

    @app.route(SPLIT_PATH)
    @web_ui.auth_required_if_enabled
    def split_json() -> Response:
        return jsonify(snapshot(get_session()))
