"""The `jobgate` command line: typer commands built on the SDK in `jobgate.client`."""
