"""``tilefleet monitor RUN_DIR``: the live page of a run, and ``--monitor`` on run commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel, Field

from tilefleet.cli.output import fail
from tilefleet.fields import Cli

_TUNNEL = (
    "It binds 127.0.0.1 (only this machine) unless --host says otherwise; from another "
    "machine, tunnel to it: `ssh -L 8765:localhost:8765 HOST`, then open "
    "http://localhost:8765/."
)
MONITOR_HELP = (
    "Follow a run live in a web page (progress, rate, ETA, cost so far, failures, the "
    "tile map filling in), for any executor, by reading its ledger read-only; once the "
    "run ends it shows the final report. " + _TUNNEL
)


class MonitorOptions(BaseModel):
    """``--monitor`` and its place: command-line only (not job keys), like ``--verbose``."""

    monitor: bool = Field(
        False,
        description="Serve the live monitor page while the run goes (see `tilefleet "
        "monitor`). " + _TUNNEL.replace("--host", "--monitor-host"),
    )
    monitor_port: Annotated[int | None, Cli(default="8765")] = Field(
        None, description="Port of the monitor page"
    )
    monitor_host: Annotated[str | None, Cli(default="127.0.0.1; another only when given")] = Field(
        None, description="Address the monitor binds"
    )


def monitor(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (of a running or ended run)")],
    port: Annotated[int, typer.Option("--port", help="Port to serve on")] = 8765,
    host: Annotated[
        str, typer.Option("--host", help="Address to bind (default: this machine only)")
    ] = "127.0.0.1",
) -> None:
    from tilefleet.engine.monitor import TUNNEL_HINT, MonitorServer

    try:
        server = MonitorServer(run_dir, port, host)
    except OSError as exc:
        fail(f"cannot serve on {host}:{port}: {exc}")
    typer.echo(f"monitor of {run_dir}: {server.url} (Ctrl-C to stop)", err=True)
    typer.echo(TUNNEL_HINT.format(port=server.port, url=server.url), err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server.server_close()


monitor.__doc__ = MONITOR_HELP


def monitor_callbacks(values: dict) -> list:
    """The ``--monitor`` options popped from a command's ``values``, as run callbacks."""
    wanted = values.pop("monitor", False)
    port = values.pop("monitor_port", None)
    host = values.pop("monitor_host", None)
    if not wanted:
        return []
    from tilefleet.engine.monitor import DEFAULT_HOST, DEFAULT_PORT, MonitorCallback

    def announce(text: str) -> None:
        typer.echo(text, err=True)

    return [MonitorCallback(port or DEFAULT_PORT, host or DEFAULT_HOST, announce=announce)]
