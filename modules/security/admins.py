"""Who owns the server: who may install, enable and disable extensions and change server-wide options.

Without logins nobody can be told apart, so only a loopback bind without a share link makes whoever uses
the app its owner (the person at this machine). With logins, only the users named in --admin-users are."""
from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class Admins:
    names: frozenset[str] = frozenset()
    logins: bool = True  # the safe default: nobody is an admin until the app says who
    local_only: bool = False  # loopback bind and no share link

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Admins":
        from modules import cmd_args
        from modules.api.auth import api_logins

        logins = bool(cmd_args.gradio_credentials(args) or api_logins(args))
        local = cmd_args.is_loopback(cmd_args.server_name(args)) and not getattr(args, "share", False)
        return cls(names=cmd_args.admin_users(args), logins=logins, local_only=local)

    def refusal(self, user: str | None) -> str | None:
        """Why `user` (a logged-in user name, None when anonymous) is not an admin; None when they are."""
        if self.logins:
            if user is not None and user in self.names:
                return None
            who = f"{user!r} is" if user is not None else "you are not logged in, so you are"
            if not self.names:
                return f"{who} not an admin: no user is named in --admin-users"
            return f"{who} not named in --admin-users"
        if self.local_only:
            return None
        return ("the app can be reached from other machines and has no logins: start it with --gradio-auth "
                "and name the admins in --admin-users")

    def allows(self, user: str | None) -> bool:
        return self.refusal(user) is None
