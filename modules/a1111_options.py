"""A1111's option keys and their default values (v1.10.1), kept as data in a1111_options.json.

GET /sdapi/v1/options answers every one of them, as A1111 does: clients read keys such as `send_seed`
or `samples_format` and write them back. The options we act on are modules/settings.py's OPTIONS."""
from __future__ import annotations

import functools
import json
from pathlib import Path

DATA_FILE = Path(__file__).with_name("a1111_options.json")


@functools.cache
def _table() -> dict:
    return json.loads(DATA_FILE.read_text(encoding="utf8"))["options"]


def defaults() -> dict:
    """A fresh copy of key -> default value."""
    return json.loads(json.dumps(_table()))
