"""Helpers (no tests here): call a Gradio event by the element it is wired to, over raw HTTP
(/gradio_api/queue/join and its event stream, or /gradio_api/run/predict for unqueued events), as a
browser does: with that browser's cookies (its login, its session) and any session_hash it likes."""
from __future__ import annotations

import json
import uuid

import requests

TIMEOUT = 120


def login(url: str, user: str, password: str) -> requests.Session:
    session = requests.Session()
    answer = session.post(f"{url}/login", data={"username": user, "password": password}, timeout=30)
    assert answer.status_code == 200 and answer.json() == {"success": True}, answer.text
    return session


def event_of(config: dict, elem_id: str | None, trigger: str = "click") -> dict:
    """The event wired to `trigger` of the component with `elem_id` (None: the page's load events)."""
    if elem_id is None:
        return [d for d in config["dependencies"] if any(t[1] == "load" for t in d["targets"])]
    ids = [c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id]
    assert ids, f"no component {elem_id}"
    found = [d for d in config["dependencies"] if [ids[0], trigger] in [list(t) for t in d["targets"]]]
    assert found, f"no {trigger} event on {elem_id}"
    return found[0]


def call(url: str, session: requests.Session, event: dict, data: list, session_hash: str | None = None) -> list:
    """Run one event as `session`; its outputs (raises AssertionError when Gradio reports a failure)."""
    session_hash = session_hash or uuid.uuid4().hex[:11]
    body = {"data": data, "fn_index": event["id"], "session_hash": session_hash, "event_data": None,
            "trigger_id": (event["targets"][0][0] if event["targets"] else None)}
    if not event.get("queue", True):
        answer = session.post(f"{url}/gradio_api/run/predict", json=body, timeout=TIMEOUT)
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]
    joined = session.post(f"{url}/gradio_api/queue/join", json=body, timeout=TIMEOUT)
    assert joined.status_code == 200, joined.text
    with session.get(f"{url}/gradio_api/queue/data", params={"session_hash": session_hash}, stream=True,
                     timeout=TIMEOUT) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if not line or not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("msg") == "process_completed":
                assert message.get("success"), message
                return message["output"]["data"]
    raise AssertionError("the event stream ended without a result")
