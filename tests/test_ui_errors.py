"""@user_errors: every Gradio handler's error is a toast (gr.Error) with one sentence the user can act on;
anything unexpected is "internal error" with an id, and the traceback is in the log under that id."""
from __future__ import annotations

import errno
import inspect
import logging
import re

import gradio as gr
import pytest

from modules import paths
from modules.errors import InvalidRequest
from modules.ui.errors import user_errors
from tests.waiting import run_coroutine


def test_a_user_error_is_a_toast_with_its_message_and_no_server_path():
    @user_errors
    def handler(width):
        raise InvalidRequest("width", f"cannot read {paths.APP_ROOT}/models/x.safetensors")

    with pytest.raises(gr.Error) as toast:
        handler(33)
    assert toast.value.message.startswith("width: cannot read") and str(paths.APP_ROOT) not in toast.value.message


def test_anything_else_is_an_internal_error_with_an_id_the_log_has(caplog):
    @user_errors
    def handler():
        raise KeyError(f"{paths.APP_ROOT}/modules/secret.py")

    with caplog.at_level(logging.ERROR), pytest.raises(gr.Error) as toast:
        handler()
    error_id = re.fullmatch(r"internal error \(id ([0-9a-f]+)\): the details are in the server log",
                            toast.value.message).group(1)
    assert any(error_id in r.getMessage() and r.exc_info for r in caplog.records)


def test_a_full_disk_says_so():
    @user_errors
    def handler():
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(gr.Error, match="No space left on device"):
        handler()


def test_generators_and_coroutines_keep_their_kind_and_signature():
    @user_errors
    def stream(prompt, request: gr.Request):
        yield "working"
        raise InvalidRequest("prompt", "is empty")

    @user_errors
    async def answer(prompt):
        raise InvalidRequest("prompt", "is empty")

    assert inspect.isgeneratorfunction(stream) and list(inspect.signature(stream).parameters) == ["prompt", "request"]
    values = []
    with pytest.raises(gr.Error, match="prompt: is empty"):
        for value in stream("", None):
            values.append(value)
    assert values == ["working"]
    assert inspect.iscoroutinefunction(answer)
    with pytest.raises(gr.Error, match="prompt: is empty"):
        run_coroutine(answer(""))
