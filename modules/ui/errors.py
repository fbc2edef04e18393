"""One error style for every Gradio handler: `@user_errors`.

A UserError becomes gr.Error(message): a toast in the browser, an exception in gradio_client. Anything
else is logged with its traceback under a short id, and the user sees only "internal error" and that id."""
from __future__ import annotations

import functools
import inspect

import gradio as gr

from modules.errors import shown_message


def _as_gradio_error(error: Exception, where: str) -> gr.Error:
    # shown_message: a UserError's text (server paths made relative), a full disk's reason, else an id.
    return gr.Error(shown_message(error, where), print_exception=False)


def user_errors(handler):
    """Decorate a Gradio handler (a function, a generator, or a coroutine function)."""
    where = f"UI {getattr(handler, '__qualname__', handler)}"

    if inspect.isasyncgenfunction(handler):
        @functools.wraps(handler)
        async def async_generator(*args, **kwargs):
            try:
                async for value in handler(*args, **kwargs):
                    yield value
            except gr.Error:
                raise
            except Exception as e:  # noqa: BLE001 - every error leaves as a gr.Error
                raise _as_gradio_error(e, where) from None
        return async_generator

    if inspect.iscoroutinefunction(handler):
        @functools.wraps(handler)
        async def coroutine(*args, **kwargs):
            try:
                return await handler(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as e:  # noqa: BLE001
                raise _as_gradio_error(e, where) from None
        return coroutine

    if inspect.isgeneratorfunction(handler):
        @functools.wraps(handler)
        def generator(*args, **kwargs):
            try:
                yield from handler(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as e:  # noqa: BLE001
                raise _as_gradio_error(e, where) from None
        return generator

    @functools.wraps(handler)
    def function(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as e:  # noqa: BLE001
            raise _as_gradio_error(e, where) from None
    return function
