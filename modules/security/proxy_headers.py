"""Whose X-Forwarded-For is believed: only --forwarded-allow-ips' proxies, never by default.

uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise, and 127.0.0.1 is where an SSH tunnel
or a local proxy connects from: every client behind one could then pick its own address, and with it a
fresh login throttle for each guess. So both servers (Gradio's, the API-only one) get the setting
explicitly. (uvicorn reads no Forwarded or X-Real-IP header; nothing here does either.)"""
from __future__ import annotations

import argparse
import contextlib
import functools
import types

from modules import cmd_args


def uvicorn_proxy_settings(args: argparse.Namespace) -> dict:
    """uvicorn.Config keywords: forwarded headers only from the proxies --forwarded-allow-ips names."""
    proxies = cmd_args.forwarded_allow_ips(args)
    return {"proxy_headers": bool(proxies), "forwarded_allow_ips": proxies}


@contextlib.contextmanager
def for_gradio_launch(settings: dict):
    """Gradio makes its uvicorn.Config itself (gradio.http_server.start_server) and passes none of these
    keywords: give them to it while `launch()` runs. Check the result with `check_server`."""
    from gradio import http_server

    real = http_server.uvicorn
    shim = types.ModuleType(real.__name__)
    shim.__dict__.update(vars(real))
    shim.Config = functools.partial(real.Config, **settings)
    http_server.uvicorn = shim
    try:
        yield
    finally:
        http_server.uvicorn = real


def check_server(server, settings: dict) -> None:
    """Refuse to go on serving when the running server does not have the settings (a Gradio upgrade that
    builds its server another way would otherwise silently believe forwarded headers again)."""
    config = getattr(server, "config", None)
    actual = {key: getattr(config, key, None) for key in settings}
    if actual != settings:
        raise RuntimeError(f"the web server's forwarded-header settings are {actual}, not {settings}: "
                           "refusing to serve (see modules/security/proxy_headers.py)")
