"""Serve bench/bare_submit_app.py as `jobgate serve` serves jobgate: uvicorn,
no access log, and with several workers a listening socket of its own in each
(jobgate/cli/reuse_port.py), so that the bare endpoint gets the same spread of
connections as jobgate does.

    BARE_DB=/tmp/x.db .venv/bin/python bench/bare_serve.py PORT WORKERS
"""

from __future__ import annotations

import sys

import uvicorn

from jobgate.cli.reuse_port import serve_workers

APP = "bare_submit_app:create_app"  # beside this file: sys.path[0], which workers inherit


def main() -> None:
    port, workers = int(sys.argv[1]), int(sys.argv[2])
    if workers == 1:
        uvicorn.run(APP, factory=True, host="127.0.0.1", port=port, access_log=False)
    else:
        serve_workers(APP, workers, "127.0.0.1", port, access_log=False)


if __name__ == "__main__":
    main()
