"""`jobgate serve` logs requests only when asked (--access-log)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server_process import ServerProcess


@pytest.mark.parametrize(("args", "logged"), [((), False), (("--access-log",), True)])
def test_requests_are_logged_only_with_access_log(
    tmp_path: Path, args: tuple[str, ...], logged: bool
) -> None:
    server = ServerProcess(tmp_path / "home").start(args=args)  # it polls /healthz until up
    try:
        with server.client() as client:
            assert client.get("/v1/jobs").status_code == 200
    finally:
        server.stop()
    log = server.log.read_text()
    assert "Application startup complete" in log
    assert ('"GET /v1/jobs HTTP/1.1" 200' in log) is logged
