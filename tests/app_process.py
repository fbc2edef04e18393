"""Start webui.py as a real process on a free loopback port, as a user would, and stop it afterwards."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppProcess:
    def __init__(self, *flags: str, env: dict | None = None, port: int | None = None):
        self.port = port or free_port()
        self.flags = [*flags, "--port", str(self.port)]
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                    "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
        self.lines: list[str] = []
        self.process: subprocess.Popen | None = None
        self.reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180) -> "AppProcess":
        self.process = subprocess.Popen([sys.executable, "webui.py", *self.flags], cwd=ROOT, env=self.env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any("Running on" in line for line in self.lines):
                return self
            if self.process.poll() is not None:
                raise RuntimeError("webui.py exited:\n" + self.output)
            time.sleep(0.2)
        self.stop()
        raise TimeoutError("webui.py did not start:\n" + self.output)

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        if self.reader is not None:
            self.reader.join(timeout=10)  # the pipe ends with the process: the last lines are read
            if not self.reader.is_alive():
                self.process.stdout.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
