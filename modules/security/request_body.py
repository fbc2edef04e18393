"""Reading a request body at the ASGI level, up to a limit, so it can be checked and then replayed to the app.

The guard reads a chunked upload to count its size, and the login check reads the form to see its user
name; both then hand the very same messages on to Gradio."""
from __future__ import annotations


async def read_body(receive, limit: int) -> tuple[list[dict], bool]:
    """(the body's messages, whether it went over `limit` bytes). Reading stops at the last message or as
    soon as the limit is passed, so a client cannot make us hold more than `limit` plus one message."""
    messages, size = [], 0
    while True:
        message = await receive()
        messages.append(message)
        size += len(message.get("body", b""))
        if size > limit:
            return messages, True
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages, False


def replay(messages: list[dict], receive):
    """A `receive` that gives `messages` again (each caller its own copy), then what is still to come."""
    queue = list(messages)

    async def replaying():
        return queue.pop(0) if queue else await receive()
    return replaying
