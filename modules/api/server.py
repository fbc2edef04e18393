"""--nowebui: the API alone, served by uvicorn (port 7861 by default), with /docs."""
from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

from fastapi import FastAPI

from modules import cmd_args
from modules.api.routes import Api, add_docs, create_api
from modules.security import logins
from modules.security.guard import GuardConfig, install
from modules.security.proxy_headers import uvicorn_proxy_settings
from modules.version import APP_NAME, VERSION


def create_api_app(backend, args: argparse.Namespace, settings_file: Path | None = None) -> tuple[FastAPI, Api]:
    app = FastAPI(title=f"{APP_NAME} API", version=VERSION, docs_url=None, redoc_url=None, openapi_url=None)
    api = create_api(backend, args, settings_file)
    for router in api.routers:
        app.include_router(router)
    add_docs(app, api)
    from modules.server import host_policy

    # api_only: with --api-auth, every route needs the login, routes extensions add later included.
    install(app, GuardConfig(api_logins=api.logins, max_body_bytes=cmd_args.max_upload_bytes(args), api_only=True,
                             hosts=host_policy(args)))
    logins.attach(app, logins.Who(api_logins=api.logins))  # who calls a route (an extension's too)
    return app, api


class ApiServer:
    """uvicorn in a thread; `stop()` ends it."""

    def __init__(self, app: FastAPI, host: str, port: int, keyfile: str | None = None, certfile: str | None = None,
                 proxy_settings: dict | None = None):
        import uvicorn

        self.host, self.port = host, port
        self.scheme = "https" if certfile else "http"
        # Forwarded headers believed only from --forwarded-allow-ips (uvicorn's default trusts 127.0.0.1).
        proxy_settings = proxy_settings or {"proxy_headers": False, "forwarded_allow_ips": []}
        config = uvicorn.Config(app, host=host, port=port, ssl_keyfile=keyfile, ssl_certfile=certfile,
                                log_level="warning", timeout_graceful_shutdown=5, **proxy_settings)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="api-server", daemon=True)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def start(self, timeout: float = 60) -> "ApiServer":
        self.thread.start()
        deadline = time.time() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.time() > deadline:
                raise SystemExit(f"the API could not be served on {self.host}:{self.port} (is the port in use?)")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def wait(self) -> None:
        try:
            while self.thread.is_alive():
                self.thread.join(0.5)
        except KeyboardInterrupt:
            self.stop()


def serve_api_only(backend, args: argparse.Namespace, block: bool = True, settings_file: Path | None = None):
    host, port = cmd_args.server_name(args), cmd_args.server_port(args)
    app, api = create_api_app(backend, args, settings_file)
    if not cmd_args.is_loopback(host) and not api.has_logins:
        print(f"WARNING: serving the API on {host} without --api-auth: anyone who can reach this machine can use it. "
              "Add --api-auth user:password.", flush=True)
    server = ApiServer(app, host, port, args.tls_keyfile, args.tls_certfile,
                       proxy_settings=uvicorn_proxy_settings(args)).start()
    print(f"Running on local URL:  {server.url}", flush=True)
    print(f"API docs: {server.url}/docs", flush=True)
    if block:
        server.wait()
    return backend, server
