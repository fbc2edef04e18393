"""Generation never reaches out to the network: no hub, no telemetry."""
import socket

import pytest


def test_no_outbound_connection_during_a_generation(backend, small_request, monkeypatch):
    attempts = []
    real_connect = socket.socket.connect

    def watch(self, address):
        host = address[0] if isinstance(address, tuple) else str(address)
        if not (host.startswith("127.") or host in ("::1", "localhost") or self.family == socket.AF_UNIX):
            attempts.append(address)
            raise OSError("outbound connection blocked by test")
        return real_connect(self, address)

    def watch_dns(host, *args, **kwargs):
        if host not in ("localhost", "127.0.0.1", "::1"):
            attempts.append(host)
            raise socket.gaierror("lookup blocked by test")
        return real_getaddrinfo(host, *args, **kwargs)

    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket.socket, "connect", watch)
    monkeypatch.setattr(socket, "getaddrinfo", watch_dns)
    with pytest.raises(OSError):  # the watch itself works
        socket.create_connection(("example.invalid", 443), timeout=1)
    assert attempts == ["example.invalid"]
    attempts.clear()
    backend.manager.unload()  # a cold load is part of the generation, and must be offline too
    result = backend.txt2img(small_request(checkpoint="tiny-sdxl-single", save_images=False))
    assert result.images
    assert attempts == []
