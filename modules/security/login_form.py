"""The login form's user name, read exactly as Gradio will read it, or a refusal.

The throttle counts failures per user name; if it read a different `username` field than the one
Gradio checks (the first of two where Gradio takes the last, one in the query string and one in the
body), a guesser would be counted under a decoy name while trying the real one. So a login request
must carry exactly one `username`, in its body, parsed by the same parser FastAPI uses (urlencoded or
multipart alike); anything else is refused before any password is checked."""
from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

from modules.security.request_body import read_body, replay

MAX_LOGIN_BYTES = 64 * 1024  # a login form is a few hundred bytes


class BadLoginForm(Exception):
    """A login request the throttle cannot attribute to one user name; `status` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


async def read_login_form(scope, receive):
    """(user name as Gradio strips it, a `receive` that replays the body for Gradio). Raises BadLoginForm."""
    query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    if any(name == "username" for name, _ in query):
        raise BadLoginForm("the login form sends its username in the request body only, not in the URL")
    messages, over = await read_body(receive, MAX_LOGIN_BYTES)
    if over:
        raise BadLoginForm(f"a login form is at most {MAX_LOGIN_BYTES // 1024} KB", status=413)
    request = Request(scope, replay(messages, receive))
    try:
        form = await request.form()
        names = form.getlist("username")
        await form.close()
    except Exception as e:  # noqa: BLE001 - a body the form parser refuses: Gradio would refuse it too
        raise BadLoginForm("the login form could not be read") from e
    if len(names) != 1 or not isinstance(names[0], str):
        raise BadLoginForm(f"the login form must have exactly one username field; it has {len(names)}")
    return names[0].strip(), replay(messages, receive)
