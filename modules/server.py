"""Starting the web server: bind address, auth, TLS, and a --share that fails gently."""
from __future__ import annotations

import argparse
import os
import socket
from urllib.parse import urlsplit

from modules import cmd_args
from modules.security import logins, outputs_access, ui_session

# Gradio keeps each session's copy of the UI's component values (about 1 MB here) for up to 10000 sessions,
# and every raw API call opens a new session: a loop of calls could fill gigabytes. The oldest go first.
SESSION_CAPACITY = 256
# Where gradio asks for a share tunnel; ZOO_SHARE_PROBE=host:port points the reachability check elsewhere (tests).
SHARE_PROBE_DEFAULT = "api.gradio.app:443"


def share_reachable(timeout: float = 3.0) -> tuple[bool, str]:
    target = os.environ.get("ZOO_SHARE_PROBE", SHARE_PROBE_DEFAULT)
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True, ""
    except OSError as e:
        return False, f"{target}: {e.strerror or e}"


def launch_warnings(args: argparse.Namespace, host: str, credentials: list) -> list[str]:
    warnings = []
    if not cmd_args.is_loopback(host) and not credentials:
        warnings.append(f"WARNING: listening on {host} without --gradio-auth: anyone who can reach this machine "
                        "can use the UI. Add --gradio-auth user:password.")
    if args.share and not credentials:
        warnings.append("WARNING: --share without --gradio-auth: anyone with the link can use the UI.")
    return warnings


def launch_ui(demo, args: argparse.Namespace, block: bool = True, before_serving=None):
    """Serve `demo`. `before_serving(app)` adds routes (the API) to the app before it takes a request:
    the app is made here and handed to Gradio (modules/compat.launch_with_app), so the guard and the API are in place
    before the port opens, not a moment after "Running on" (a script that polls the port could land there)."""
    from modules.compat import gradio_app

    host, port = cmd_args.server_name(args), cmd_args.server_port(args)
    credentials = cmd_args.gradio_credentials(args)
    for warning in launch_warnings(args, host, credentials):
        print(warning, flush=True)
    share = args.share
    if share:
        reachable, reason = share_reachable()
        if not reachable:
            print(f"--share: no share tunnel could be reached ({reason}); serving locally only.", flush=True)
            share = False
    demo.queue(default_concurrency_limit=4)
    app = gradio_app()  # what Gradio would make itself
    guard = guard_app(app, args, ui_logins=bool(credentials))
    keep_users_apart(app, args, guard, ui_logins=bool(credentials))
    if before_serving is not None:
        before_serving(app)
    guard.launching = True
    try:
        result = launch(demo, app, args, host, port, share, credentials)
    finally:
        guard.launching = False
    if getattr(demo, "share_url", None):
        guard.hosts.share_host = urlsplit(demo.share_url).hostname  # the link's requests carry its name
    if block:
        demo.block_thread()
    return result


def launch(demo, app, args: argparse.Namespace, host: str, port: int, share: bool, credentials):
    from modules.compat import running_server
    from modules.security import proxy_headers

    settings = proxy_headers.uvicorn_proxy_settings(args)
    with proxy_headers.for_gradio_launch(settings):
        result = _launch(demo, app, args, host, port, share, credentials)
    try:
        proxy_headers.check_server(running_server(demo), settings)
    except RuntimeError:
        demo.close()
        raise
    return result


def _launch(demo, app, args: argparse.Namespace, host: str, port: int, share: bool, credentials):
    from modules.quiet_log import gradio_launch_output

    with gradio_launch_output(args.share):  # Gradio's share hint names its own argument, not our --share
        return _gradio_launch(demo, app, args, host, port, share, credentials)


def _gradio_launch(demo, app, args: argparse.Namespace, host: str, port: int, share: bool, credentials):
    from modules.compat import launch_with_app

    return launch_with_app(
        demo, app,  # our app, so that our routes are in place before the server starts
        server_name=host, server_port=port, share=share,
        auth=credentials or None,
        ssl_keyfile=args.tls_keyfile, ssl_certfile=args.tls_certfile, ssl_verify=False if args.tls_keyfile else True,
        prevent_thread_lock=True, show_error=True, quiet=False,
        footer_links=["api", "settings"], theme=_theme(), css=_css(),
        allowed_paths=[str(args.outdir)],
        max_file_size=cmd_args.max_upload_bytes(args),
        state_session_capacity=SESSION_CAPACITY,
        # Gradio's run history would hand a request from loopback (an SSH tunnel's) the machine owner's saved
        # Hugging Face token to browse their buckets; this app has no use for it.
        run_history=False,
    )


def guard_app(app, args: argparse.Namespace, ui_logins: bool):
    """Logins on every route (the login page's own files excepted), only this server's Host names, no
    cross-site changes, no CORS for other sites, no `..` paths, and the upload limit: see
    modules/security/guard.py."""
    from modules.api.auth import Logins, api_logins
    from modules.security.guard import GuardConfig, install

    config = GuardConfig(ui_logins=ui_logins, api_logins=Logins(api_logins(args)),
                         max_body_bytes=cmd_args.max_upload_bytes(args), hosts=host_policy(args))
    install(app, config, session_app=app if ui_logins else None)
    return config


def host_policy(args: argparse.Namespace):
    """The Host names served: loopback, the bound address, --allowed-hosts (the share link's, once it exists)."""
    from modules.security.hosts import HostPolicy

    return HostPolicy(bound=cmd_args.server_name(args), rules=cmd_args.allowed_hosts(args))


def keep_users_apart(app, args: argparse.Namespace, guard, ui_logins: bool) -> None:
    """Who a request comes from (modules/owners.py), and each user's outputs readable by that user only."""
    from modules.api.auth import api_logins

    ui_session.install(app)  # an anonymous browser's identity: a server-issued cookie, not Gradio's session_hash
    who = logins.Who(session_app=app if ui_logins else None, api_logins=guard.api_logins)
    logins.attach(app, who)
    users = {user for user, _ in [*cmd_args.gradio_credentials(args), *api_logins(args)]}
    outputs_access.install(app, args.outdir, users, who)


def _theme():
    from modules.ui.app import THEME
    return THEME


def _css():
    from modules.ui.common import CSS
    return CSS
