"""Whose X-Forwarded-For is believed: only --forwarded-allow-ips' proxies, never by default.

uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise, and 127.0.0.1 is where an SSH tunnel
or a local proxy connects from: every client behind one could then pick its own address, and with it a
fresh login throttle for each guess. So both servers (Gradio's, the API-only one) get the setting
explicitly. (uvicorn reads no Forwarded or X-Real-IP header; nothing here does either.)"""
from __future__ import annotations

import argparse

from modules import cmd_args
from modules.compat import uvicorn_config_for_gradio


def uvicorn_proxy_settings(args: argparse.Namespace) -> dict:
    """uvicorn.Config keywords: forwarded headers only from the proxies --forwarded-allow-ips names."""
    proxies = cmd_args.forwarded_allow_ips(args)
    return {"proxy_headers": bool(proxies), "forwarded_allow_ips": proxies}


def for_gradio_launch(settings: dict):
    """Gradio makes its uvicorn.Config itself and passes none of these keywords: give them to it while
    `launch()` runs (a context manager). Check the result with `check_server`."""
    return uvicorn_config_for_gradio(settings)


def check_server(server, settings: dict) -> None:
    """Refuse to go on serving when the running server does not have the settings (a Gradio upgrade that
    builds its server another way would otherwise silently believe forwarded headers again)."""
    config = getattr(server, "config", None)
    actual = {key: getattr(config, key, None) for key in settings}
    if actual != settings:
        raise RuntimeError(f"the web server's forwarded-header settings are {actual}, not {settings}: "
                           "refusing to serve (see modules/security/proxy_headers.py)")
