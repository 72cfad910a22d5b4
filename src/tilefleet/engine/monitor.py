"""The live monitor: a local web page that follows a run by reading its ledger.

Standard library only: a :class:`~http.server.ThreadingHTTPServer` serves the report page
(:mod:`tilefleet.engine.html_report`) at ``/`` and its data at ``/api/data``, which the
page's inline script polls. Every request opens the ledger read-only (``mode=ro``; the
ledger is in WAL mode, so reading never blocks the writing run), so it works for any
executor, beside the run or from another process, and keeps working once the run has
ended (then it shows the final report). It binds 127.0.0.1 unless told otherwise; from
another machine, tunnel to it: ``ssh -L 8765:localhost:8765 host``.

For a launched plan (an HTCondor DAG), whose nodes report outcome files that are merged
into the ledger only at the end (or by ``tilefleet report``), the monitor also reads the
outcome files not merged yet, so such a run fills in live too.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import closing
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

from tilefleet.engine.callbacks import RunCallback, RunStart
from tilefleet.engine.html_report import map_geometry, page_data, render_page
from tilefleet.engine.ledger import LEDGER_NAME, Ledger, TaskRecord
from tilefleet.engine.report import build_report
from tilefleet.engine.task_runner import DETACHED_SESSION, OUTCOMES_DIR
from tilefleet.errors import RETRYABLE
from tilefleet.task import FAILED, PENDING, SKIPPED, SUCCEEDED

if TYPE_CHECKING:
    from tilefleet.engine.result import RunResult

log = logging.getLogger("tilefleet")

DEFAULT_PORT = 8765
DEFAULT_HOST = "127.0.0.1"
POLL_MS = 1000
TUNNEL_HINT = "from another machine: ssh -L {port}:localhost:{port} HOST, then open {url}"


class RunMonitor:
    """What the page shows of one run dir, read from its ledger on each request. The
    outlines of the tiles are computed once per plan (they do not change during a run)."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self._geometry: tuple[int, dict[str, Any]] | None = None
        self._lock = threading.Lock()
        #: Set once a client has been served the data of a finished run.
        self.served_final = threading.Event()
        self.clients = 0

    def data(self, known_shapes: int | None = None) -> dict[str, Any]:
        """The page's data now; the outlines are left out when the client already holds
        ``known_shapes`` of them."""
        if not (self.run_dir / LEDGER_NAME).is_file():
            return _waiting(self.run_dir)
        with closing(Ledger.in_run_dir(self.run_dir, readonly=True)) as ledger:
            records = list(ledger.records())
            attempts = ledger.attempts()
            sessions = ledger.sessions()
            records, attempts = with_unmerged_outcomes(
                self.run_dir, records, attempts, ledger.get_meta(DETACHED_SESSION)
            )
            report = build_report(ledger, self.run_dir, records, attempts)
        geometry = self._geometry_of(records)
        data = page_data(report, records, attempts, sessions, geometry=geometry)
        data["live"] = _live_facts(report, records, attempts, sessions)
        if (
            known_shapes is not None
            and data["map"]["kind"] == "tiles"
            and known_shapes == len(data["map"]["ids"])
        ):
            for key in ("coords", "ring_start", "shape_ring", "ids"):
                data["map"].pop(key)
        if data["live"]["state"] == "finished":
            self.served_final.set()
        return data

    def _geometry_of(self, records) -> dict[str, Any]:
        with self._lock:
            if self._geometry is None or self._geometry[0] != len(records):
                self._geometry = (len(records), map_geometry([r.task for r in records]))
            return self._geometry[1]

    def page(self) -> str:
        live = {"endpoint": "api/data", "interval_ms": POLL_MS}
        return render_page(self.data(), live=live)


def with_unmerged_outcomes(
    run_dir: Path,
    records: list[TaskRecord],
    attempts: list[dict[str, Any]],
    session: int | None,
) -> tuple[list[TaskRecord], list[dict[str, Any]]]:
    """The records and attempts with the outcome files that the nodes of a launched plan
    (an HTCondor DAG) have reported but nobody has merged into the ledger yet: the monitor
    shows them without writing anything (merging is ``tilefleet report``'s job)."""
    folder = run_dir / OUTCOMES_DIR
    if not folder.is_dir():
        return records, attempts
    index = {r.task.id: i for i, r in enumerate(records)}
    records, attempts = list(records), list(attempts)
    for path in sorted(folder.glob("*.json")):
        try:
            outcome = json.loads(path.read_text())
        except (OSError, ValueError):  # merged (moved away) meanwhile
            continue
        position = index.get(outcome.get("task_id"))
        if position is None:
            continue
        record = records[position]
        if outcome["ok"]:
            status = SKIPPED if (outcome.get("metrics") or {}).get("skipped") else SUCCEEDED
        else:
            status = PENDING if outcome.get("error_kind") == RETRYABLE else FAILED
        number = record.attempts + 1
        records[position] = TaskRecord(
            record.task,
            status,
            number,
            outcome["finished"] - outcome["started"],
            outcome["worker"],
            outcome.get("error"),
        )
        attempts.append(
            {
                "task_id": record.task.id,
                "attempt": number,
                "session": session,
                "worker": outcome["worker"],
                "started": outcome["started"],
                "finished": outcome["finished"],
                "ok": int(bool(outcome["ok"])),
                "error": outcome.get("error"),
                "metrics": outcome.get("metrics") or {},
            }
        )
    return records, attempts


def _waiting(run_dir: Path) -> dict[str, Any]:
    summary = {"run_id": None, "recipe": None, "run_dir": str(run_dir), "tasks": 0}
    return {
        "plan": False,
        "generated": time.time(),
        "summary": summary,
        "sessions": [],
        "map": {"kind": "list", "ids": [], "status": "", "reasons": {}},
        "timeline": {"lanes": 0, "labels": [], "lane_label": "", "outcome": ""},
        "durations": "",
        "failures": [],
        "warnings": [],
        "breakdown": None,
        "live": {"state": "waiting for the run to start"},
    }


def _live_facts(report, records, attempts, sessions) -> dict[str, Any]:
    """Progress, rate, ETA and cost so far of the run's current (or last) session."""
    last = sessions[-1] if sessions else None
    running = last is not None and last["finished"] is None
    clock = time.time()
    ended = [a for a in attempts if a["finished"] is not None]
    since = last["started"] if last else clock
    mine = [a for a in ended if a["session"] == (last["id"] if last else None)]
    elapsed = max(1e-9, (clock if running else (last["finished"] or clock)) - since)
    rate = len([a for a in mine if a["ok"]]) / elapsed if mine else 0.0
    remaining = report["pending"]
    cost = report["cost_usd"]["measured"]
    billing = (last or {}).get("settings", {}).get("billing") if last else None
    if billing and running:  # attempts still running are billed too
        cost = (cost or 0.0) + sum(
            (clock - a["started"]) * billing["memory_gb"] * billing["usd_per_gb_s"]
            for a in attempts
            if a["finished"] is None and a["started"] and a["session"] == last["id"]
        )
    done = report[SUCCEEDED] + report[SKIPPED] + report[FAILED]
    return {
        "state": "running" if running else ("finished" if last else "planned"),
        "done": done,
        "total": report["tasks"],
        "elapsed_s": round(elapsed, 3),
        "rate_per_s": round(rate, 4),
        "eta_s": round(remaining / rate, 1) if running and rate > 0 else None,
        "cost_usd": cost,
    }


class _Handler(BaseHTTPRequestHandler):
    monitor: RunMonitor

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urlparse(self.path)
        try:
            if url.path in ("/", "/index.html"):
                self.monitor.clients += 1
                self._send(self.monitor.page().encode(), "text/html; charset=utf-8")
            elif url.path == "/api/data":
                known = parse_qs(url.query).get("known_shapes", [None])[0]
                data = self.monitor.data(int(known) if known not in (None, "-1") else None)
                self._send(json.dumps(data, default=_plain).encode(), "application/json")
            elif url.path == "/report.html" and (self.monitor.run_dir / "report.html").is_file():
                body = (self.monitor.run_dir / "report.html").read_bytes()
                self._send(body, "text/html; charset=utf-8")
            else:
                self.send_error(HTTPStatus.NOT_FOUND)
        except Exception as exc:  # the page shows the last state and keeps polling
            log.debug("monitor request %s failed: %s", self.path, exc)
            self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc)[:200])

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: debug log only
        log.debug("monitor: " + format, *args)


def _plain(value: Any) -> Any:
    return str(value)


class MonitorServer:
    """The monitor's HTTP server on ``host:port`` (port 0: any free one), serving in a
    background thread until :meth:`stop`."""

    def __init__(self, run_dir: Path, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST):
        self.monitor = RunMonitor(run_dir)
        handler = type("Handler", (_Handler,), {"monitor": self.monitor})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{'localhost' if host in ('127.0.0.1', '::1') else host}:{port}/"

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> MonitorServer:
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="tilefleet-monitor", daemon=True
        )
        self.thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MonitorCallback(RunCallback):
    """Serves the monitor for the duration of a run (``--monitor``): starts it once the
    run dir is known, and at the end waits a little (at most ``linger_s``) for an open page
    to fetch the final state before the process goes on to exit."""

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        host: str = DEFAULT_HOST,
        linger_s: float = 5.0,
        announce=None,
    ):
        self.port, self.host, self.linger_s = port, host, linger_s
        self.announce = announce or (lambda text: log.info("%s", text))
        self.server: MonitorServer | None = None

    def on_run_start(self, run: RunStart) -> None:
        self.server = MonitorServer(run.run_dir, self.port, self.host).start()
        url = self.server.url
        self.announce(f"monitor: {url} ({TUNNEL_HINT.format(port=self.server.port, url=url)})")

    def on_run_end(self, result: RunResult) -> None:
        if self.server is None:
            return
        if self.server.monitor.clients:
            self.server.monitor.served_final.wait(self.linger_s)
        self.server.stop()
        self.server = None
