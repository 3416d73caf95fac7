"""Serve bench/bare_submit_app.py as `jobgate serve` serves jobgate: uvicorn,
no access log, and with several workers a listening socket of its own in each
(jobgate/cli/reuse_port.py), so that the bare endpoint gets the same spread of
connections as jobgate does.

    BARE_DB=/tmp/x.db .venv/bin/python bench/bare_serve.py PORT WORKERS
"""

from __future__ import annotations

import sys

import uvicorn
from uvicorn.supervisors import Multiprocess

from jobgate.cli.reuse_port import PortPerWorker


def main() -> None:
    # bare_submit_app is found beside this file: sys.path[0], which spawned
    # workers inherit.
    port, workers = int(sys.argv[1]), int(sys.argv[2])
    config = uvicorn.Config("bare_submit_app:create_app", factory=True, host="127.0.0.1",
                            port=port, workers=workers, access_log=False)
    if workers == 1:
        uvicorn.Server(config).run()
        return
    sockets = PortPerWorker("127.0.0.1", port)
    try:
        Multiprocess(config, sockets=sockets).run()
    finally:
        sockets.close()


if __name__ == "__main__":
    main()
