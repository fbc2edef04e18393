"""Owner ids, user folders and per-owner task ids, without a server."""
from __future__ import annotations

from pathlib import Path

import pytest

from modules import owners
from modules.jobs import JobRegistry, TaskIdInUse


def test_a_users_folder_is_one_plain_folder_whatever_the_login_name():
    assert owners.user_folder("alice") == "alice"
    for name in ("..", ".", "a/../../etc", "a\\b", "x" * 200, "txt2img-images", "gan-grids", "é", "", "a."):
        folder = owners.user_folder(name)
        assert folder.startswith("user-") and "/" not in folder and "\\" not in folder and ".." not in folder
    assert owners.user_folder("a/b") != owners.user_folder("a\\b")
    assert owners.output_root(Path("/out"), owners.user("bob")) == Path("/out/bob")
    for anonymous in (None, owners.ui_session("abc"), owners.api_anonymous("127.0.0.1")):
        assert owners.output_root(Path("/out"), anonymous) == Path("/out")


def test_owner_kinds_never_overlap():
    assert owners.user_name(owners.user("bot")) == "bot"
    assert owners.user_name(owners.ui_session("bot")) is None and owners.user_name(owners.api_anonymous("bot")) is None
    assert len({owners.user("x"), owners.ui_session("x"), owners.api_anonymous("x")}) == 3
    assert owners.nobody_else() != owners.nobody_else()


def test_task_ids_are_per_owner():
    jobs = JobRegistry()
    alice = jobs.create("txt2img", "user:alice", "t1")
    bob = jobs.create("txt2img", "user:bob", "t1")  # the same id, another owner: a task of its own
    assert alice is not bob
    assert jobs.get("t1", "user:alice") is alice and jobs.get("t1", "user:bob") is bob
    assert jobs.get("t1", "user:carol") is None
    with pytest.raises(TaskIdInUse):
        jobs.create("txt2img", "user:alice", "t1")
    assert jobs.interrupt("user:bob") == 1 and not alice.interrupt_requested
