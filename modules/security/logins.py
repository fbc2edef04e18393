"""Who is logged in on a request, for code outside Gradio's handlers (file routes, extension routes):
the UI's login (Gradio's session cookie) or the API's HTTP Basic login. The guard has let the request in
already; this only names the user."""
from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.requests import Request, cookie_parser

from modules.compat import logged_in_user


@dataclass
class Who:
    session_app: object | None = None  # the Gradio app whose login cookies count (None: no UI logins)
    api_logins: object | None = None  # modules.api.auth.Logins

    def login_name(self, scope) -> str | None:
        if self.session_app is not None:
            user = logged_in_user(self.session_app, cookie_parser(Headers(scope=scope).get("cookie", "")))
            if user:
                return user
        if self.api_logins is not None and getattr(self.api_logins, "required", False):
            return self.api_logins.logged_in_user(Request(scope))
        return None


def attach(app, who: Who) -> None:
    app.state.zoo_who = who


def login_name(request) -> str | None:
    """The logged-in user of a request to this app's routes (an extension's too); None when anonymous."""
    who = getattr(getattr(request.app, "state", None), "zoo_who", None)
    return who.login_name(request.scope) if who is not None else None
