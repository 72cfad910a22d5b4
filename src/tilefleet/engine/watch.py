"""``tilefleet watch``: claim CSV manifests dropped in a bucket (or folder) and run a recipe
on each exactly once (``cogify`` by default; any recipe that declares a ``manifest_param``).

The COG crank's watcher lists the bucket, renames ``…raw.csv`` to ``…processing-<ts>.csv`` by
copy + delete *after* submitting work (two watchers can both take a manifest), needs unique
base names, and its post step judges success by listing the output bucket once per row. Here:

- one paginated listing of the source per pass (plus one of the claims folder), whatever
  the number of manifests; base names need not be unique, the key is what counts;
- a manifest is **claimed** before anything else happens: a small claim object is created
  with an atomic create-if-absent (``If-None-Match: *`` on S3, ``link()`` on a file system),
  and only the watcher that created it copies ``raw`` to ``processing-<ts>`` and deletes
  ``raw``. Claims carry a generation number, so a claim whose holder died is taken over
  (by creating the next generation, atomically again) once it is older than ``stale_after``;
- the rows run through the ordinary engine (``build_job`` + ``run_job``) in a run directory
  named from the processing key, so a restarted watcher resumes the same ledger, and the
  destination skip covers a takeover from another machine;
- success comes from the run's ledger, never from listing the outputs: ``processed-<ts>.csv``
  holds the rows that succeeded or were already done (``path,num_bands``, as uploaded),
  ``failed-<ts>.csv`` the others plus ``reason`` (a valid manifest for a retry);
- a ``processing`` file whose watcher was killed is finished by a later pass once it is
  older than ``stale_after`` (judged by the timestamp in its name, or by its latest takeover
  claim).

The claims themselves are in :mod:`tilefleet.engine.claims`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import re
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tilefleet.engine.callbacks import RunCallback
from tilefleet.engine.claims import WATCH_DIR, Claim, ClaimBook, claims_location, is_missing
from tilefleet.engine.executors import executor_class
from tilefleet.engine.job import DEFAULT_EXECUTOR, build_job
from tilefleet.engine.ledger import LEDGER_NAME, Ledger
from tilefleet.engine.run import rebuild_reports, run_job
from tilefleet.engine.signals import sigterm_as_interrupt
from tilefleet.engine.task_runner import DETACHED_SESSION
from tilefleet.errors import ExitCode, JobError, one_line
from tilefleet.recipes import get_recipe
from tilefleet.recipes.base import Recipe
from tilefleet.store.location import Location
from tilefleet.store.objects import is_partial, open_store
from tilefleet.task import DONE_STATES, FAILED, PENDING, SKIPPED
from tilefleet.tiles.manifest import format_rows

log = logging.getLogger("tilefleet")

TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
DEFAULT_RECIPE = "cogify"
DEFAULT_PATTERN = "*raw.csv"
DEFAULT_STALE_AFTER_S = 2 * 3600.0
DEFAULT_RUNS_DIR = Path("runs/watch")
RAW_SUFFIX = "raw.csv"

# Names the watcher itself writes: never claimed as new manifests, whatever the pattern.
_WATCHER_NAME = re.compile(
    r"^(?P<stem>.*)(?P<state>processing|processed|failed)-(?P<ts>\d{8}T\d{6}Z)\.csv$"
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


# -- options ----------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90``, ``30s``, ``15m``, ``2h``, ``1h30m`` or ``1d``."""
    compact = text.strip().replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if not compact or "".join(f"{n}{u}" for n, u in parts) != compact:
        raise JobError(f"invalid duration {text!r}; use e.g. 90, 30s, 15m, 2h, 1h30m or 1d")
    return sum(float(number) * _DURATION_UNITS[unit.lower()] for number, unit in parts)


@dataclass(frozen=True)
class WatchOptions:
    """What a watcher looks for, where the work goes, and how the runs are made.

    ``recipe`` runs on every manifest: it must declare the parameter that takes a manifest
    (``manifest_param``). ``job_options`` holds its other parameters (cogify's ``profile``,
    ``preview_max_size`` …) and the run options (``workers``, ``retries``, ``executor`` …)
    of every run. ``input_root``, for a recipe that has one, defaults to the source
    bucket's root. ``every_s`` None means a single pass.
    """

    source: str
    dest: str
    recipe: str = DEFAULT_RECIPE
    pattern: str = DEFAULT_PATTERN
    input_root: str | None = None
    runs_dir: Path = DEFAULT_RUNS_DIR
    stale_after_s: float = DEFAULT_STALE_AFTER_S
    every_s: float | None = None
    job_options: dict[str, Any] = field(default_factory=dict)
    #: Follow each manifest's run (the live monitor page, a progress bar).
    callbacks: tuple[RunCallback, ...] = ()


def default_input_root(source: Location) -> str:
    """Manifest paths are relative to the source bucket's root (or the source folder)."""
    return source.url if source.is_local else f"{source.scheme}://{source.bucket}"


def validate_options(options: WatchOptions) -> None:
    """Raise :class:`JobError` (exit 3) for options no pass could work with, before any
    manifest is claimed, so a typo never sends every manifest to ``failed``."""
    if not options.pattern.strip():
        raise JobError("--pattern must not be empty")
    if options.stale_after_s < 0:
        raise JobError("--stale-after must not be negative")
    if options.every_s is not None and options.every_s <= 0:
        raise JobError("--every must be longer than zero")
    try:
        source = Location.parse(options.source)
        Location.parse(options.dest)
        if options.input_root:
            Location.parse(options.input_root)
    except ValueError as exc:
        raise JobError(str(exc)) from None
    if source.is_local and not Path(source.prefix).is_dir():
        raise JobError(f"source folder {source.prefix} does not exist")
    executor_class(options.job_options.get("executor", DEFAULT_EXECUTOR))
    build_job(_job_values(options, "validate-only.csv", options.runs_dir / "validate-only"))


def watched_recipe(name: str) -> Recipe:
    """The recipe a watcher runs; :class:`JobError` unless it is planned from a manifest."""
    recipe = get_recipe(name)
    if recipe.manifest_param is None:
        raise JobError(f"recipe {name!r} takes no manifest, so it cannot be watched")
    return recipe


def _job_values(options: WatchOptions, manifest_url: str, run_dir: Path) -> dict[str, Any]:
    recipe = watched_recipe(options.recipe)
    values = {
        **options.job_options,
        "recipe": options.recipe,
        recipe.manifest_param: manifest_url,
        "dest": options.dest,
        "run_dir": str(run_dir),
    }
    if "input_root" in recipe.Params.model_fields:  # manifest paths relative to a root
        source = Location.parse(options.source)
        values["input_root"] = options.input_root or default_input_root(source)
    elif options.input_root:
        raise JobError(f"recipe {options.recipe!r} takes no --input-root")
    return values


# -- results ----------------------------------------------------------------------------


@dataclass
class ManifestResult:
    """What happened to one manifest in one pass."""

    manifest: str
    processing_key: str
    run_dir: Path | None = None
    succeeded: int = 0
    skipped: int = 0
    failed: int = 0
    processed_key: str | None = None
    failed_key: str | None = None
    abandoned: bool = False
    error: str | None = None
    #: Tasks of a launched plan (an HTCondor DAG) not reported yet: the manifest stays
    #: ``processing`` until a later pass finds them all reported.
    pending: int = 0

    @property
    def ok(self) -> bool:
        return not (self.failed or self.error or self.abandoned)

    def describe(self) -> str:
        """The one log line of a manifest."""
        if self.error:
            return (
                f"manifest {self.manifest}: left as {self.processing_key} for a later "
                f"pass: {self.error}"
            )
        if self.abandoned:
            return (
                f"manifest {self.manifest}: interrupted, left as {self.processing_key} "
                f"(picked up again once stale; run dir {self.run_dir})"
            )
        if self.pending:
            return (
                f"manifest {self.manifest}: {self.processing_key} runs as a launched plan, "
                f"{self.pending} task(s) not reported yet; a later pass writes its "
                f"processed/failed CSVs (run dir {self.run_dir})"
            )
        written = [f"processed → {self.processed_key}"] if self.processed_key else []
        written += [f"failed → {self.failed_key}"] if self.failed_key else []
        return (
            f"manifest {self.manifest}: claimed as {self.processing_key}; "
            f"{self.succeeded} succeeded, {self.skipped} already done, {self.failed} "
            f"failed; {', '.join(written) or 'nothing written'} (run dir {self.run_dir})"
        )


@dataclass
class PassResult:
    """One pass over the source: the manifests it finished (or left) and how it ended."""

    manifests: list[ManifestResult] = field(default_factory=list)
    interrupted: bool = False
    error: str | None = None

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.error or not all(m.ok for m in self.manifests):
            return ExitCode.PARTIAL
        return ExitCode.OK

    def describe(self) -> str:
        rows = {
            key: sum(getattr(m, key) for m in self.manifests)
            for key in ("succeeded", "skipped", "failed")
        }
        text = (
            f"watch pass: {len(self.manifests)} manifest(s); {rows['succeeded']} row(s) "
            f"succeeded, {rows['skipped']} already done, {rows['failed']} failed"
        )
        if self.error:
            text += f"; {self.error}"
        return text + ("; interrupted" if self.interrupted else "")


# -- names ------------------------------------------------------------------------------


def utc_timestamp(at: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return moment.strftime(TIMESTAMP_FORMAT)


def timestamp_seconds(text: str) -> float | None:
    """Seconds since the epoch of a ``20260522T181203Z`` stamp; None for an impossible date."""
    try:
        return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def manifest_stem(key: str) -> str:
    """``a/x-raw.csv`` → ``a/x-`` (the crank's rule: cut ``raw.csv``); ``a/x.csv`` → ``a/x-``."""
    if key.endswith(RAW_SUFFIX):
        return key[: -len(RAW_SUFFIX)]
    return f"{key.removesuffix('.csv')}-"


def processing_stamp(processing_key: str) -> str:
    """The UTC timestamp in the name of a watcher's ``…processing-<ts>.csv`` file."""
    return _WATCHER_NAME.match(processing_key.rsplit("/", 1)[-1])["ts"]


def state_key(stem: str, state: str, timestamp: str) -> str:
    """``{stem}{processing|processed|failed}-{timestamp}.csv``."""
    return f"{stem}{state}-{timestamp}.csv"


def is_watcher_file(key: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return key.startswith(f"{WATCH_DIR}/") or bool(_WATCHER_NAME.match(name))


def may_be_from_pattern(stem_name: str, pattern: str) -> bool:
    """Whether a processing file's original name (``{stem}raw.csv`` or ``{stem-}.csv``)
    matches ``pattern``: a watcher resumes only the processing files its pattern made."""
    originals = (f"{stem_name}{RAW_SUFFIX}", f"{stem_name.removesuffix('-')}.csv")
    return any(fnmatch.fnmatchcase(name, pattern) for name in originals)


def run_dir_name(processing_url: str, processing_key: str) -> str:
    """Deterministic per processing file, so a restarted watcher resumes the same ledger."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", processing_key.removesuffix(".csv"))[-100:]
    return f"{slug}-{hashlib.sha256(processing_url.encode()).hexdigest()[:10]}"


# -- the watcher ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Listing:
    """What one pass saw: new manifests, processing files (with their timestamp), all keys."""

    raw: list[str]
    processing: list[tuple[str, float]]
    keys: frozenset[str]


class Watcher:
    """Finds, claims and finishes manifests below one source URL."""

    def __init__(self, options: WatchOptions):
        validate_options(options)
        self.options = options
        #: The columns of a manifest row, as processed/failed CSVs give them back.
        self.columns = tuple(watched_recipe(options.recipe).source_columns)
        self.source = open_store(options.source)
        self.claims = ClaimBook(
            open_store(claims_location(self.source.location)), options.stale_after_s
        )

    # one pass ---------------------------------------------------------------------------

    def run_pass(self) -> PassResult:
        """List once, finish stale processing files, then claim and finish new manifests."""
        result = PassResult()
        try:
            listing = self._list()
            self.claims.load()
        except KeyboardInterrupt:
            result.interrupted = True
            return result
        except Exception as exc:
            result.error = f"cannot list {self.source.url}: {one_line(exc)}"
            log.error("%s", result.error)
            return result
        try:
            for key, since in listing.processing:
                launched = self._launched_run_dir(key)
                if launched is not None:  # a plan runs it on its own: collect, never rerun
                    self._record(result, self._collect(key, launched))
                else:
                    self._record(result, self._resume(key, since))
                if result.interrupted:
                    return result
            for key in listing.raw:
                self._record(result, self._claim_and_finish(key, listing.keys))
                if result.interrupted:
                    return result
        except KeyboardInterrupt:
            result.interrupted = True
        return result

    def _record(self, result: PassResult, manifest: ManifestResult | None) -> None:
        if manifest is None:
            return
        result.manifests.append(manifest)
        if manifest.abandoned:
            result.interrupted = True
        (log.info if manifest.ok else log.warning)("%s", manifest.describe())

    def _list(self) -> _Listing:
        raw, processing, keys = [], [], set()
        for info in self.source.list():
            key = info.key
            keys.add(key)
            name = key.rsplit("/", 1)[-1]
            if key.startswith(f"{WATCH_DIR}/") or is_partial(key):
                continue
            state = _WATCHER_NAME.match(name)
            if state is None:
                if fnmatch.fnmatchcase(name, self.options.pattern):
                    raw.append(key)
            elif state["state"] == "processing" and may_be_from_pattern(
                state["stem"], self.options.pattern
            ):
                since = timestamp_seconds(state["ts"])
                if since is not None:
                    processing.append((key, since))
        return _Listing(sorted(raw), sorted(processing), frozenset(keys))

    # claiming a new manifest --------------------------------------------------------------

    def _claim_and_finish(self, raw_key: str, listed: frozenset[str]) -> ManifestResult | None:
        """Claim ``raw_key``; the winner alone copies it to processing and deletes it."""
        stamp = utc_timestamp()
        stem = manifest_stem(raw_key)
        processing_key = state_key(stem, "processing", stamp)
        claim = self.claims.acquire(self._url(raw_key), None, {"processing": processing_key})
        if claim is None:
            log.debug("manifest %s: claimed by another watcher", self._url(raw_key))
            return None
        if claim.previous and self._handed_off(claim.previous, listed):
            # The stale holder died after writing its processing file: that file is resumed
            # on its own; the raw manifest only has to go.
            self.source.delete([raw_key])
            self.claims.release(claim)
            log.info(
                "manifest %s: already handed off as %s; removed",
                self._url(raw_key),
                claim.previous["processing"],
            )
            return None
        try:
            data = self.source.get_bytes(raw_key)
        except Exception as exc:
            self.claims.release(claim)
            if is_missing(exc):  # taken and finished by another watcher since our listing
                return None
            return ManifestResult(
                self._url(raw_key), raw_key, error=f"cannot read it: {one_line(exc)}"
            )
        if not self.source.put_bytes(data, processing_key, if_absent=True):
            self.claims.release(claim)
            return None  # the same name within the same second: next pass
        self.source.delete([raw_key])
        self.claims.release(claim)
        return self._finish(self._url(raw_key), processing_key, stamp, data, lease=None)

    def _handed_off(self, previous: dict[str, Any], listed: frozenset[str]) -> bool:
        processing = previous.get("processing") or ""
        state = _WATCHER_NAME.match(processing.rsplit("/", 1)[-1])
        if state is None:
            return False
        stem = processing.removesuffix(f"processing-{state['ts']}.csv")
        return any(
            state_key(stem, s, state["ts"]) in listed for s in ("processing", "processed", "failed")
        )

    # resuming a stale processing file -----------------------------------------------------

    def _resume(self, processing_key: str, since: float) -> ManifestResult | None:
        """Take over a processing file whose watcher stopped (once it is stale) and finish it."""
        lease = self.claims.acquire(self._url(processing_key), since)
        if lease is None:
            return None
        try:
            data = self.source.get_bytes(processing_key)
        except Exception as exc:
            self.claims.release(lease)
            if is_missing(exc):  # finished by its own watcher since our listing
                return None
            return ManifestResult(
                self._url(processing_key), processing_key, error=f"cannot read it: {one_line(exc)}"
            )
        stamp = processing_stamp(processing_key)
        log.info("manifest %s: resuming (stale since %s)", self._url(processing_key), stamp)
        return self._finish(self._url(processing_key), processing_key, stamp, data, lease)

    # a plan launched on its own (an HTCondor DAG) -------------------------------------------

    def _run_dir(self, processing_key: str) -> Path:
        processing_url = self._url(processing_key)
        return self.options.runs_dir / run_dir_name(processing_url, processing_key)

    def _launched_run_dir(self, processing_key: str) -> Path | None:
        """The run dir of a processing file whose rows were handed to a plan executor."""
        run_dir = self._run_dir(processing_key)
        if not (run_dir / LEDGER_NAME).is_file():
            return None
        with closing(Ledger.in_run_dir(run_dir, readonly=True)) as ledger:
            return run_dir if ledger.get_meta(DETACHED_SESSION) is not None else None

    def _collect(self, processing_key: str, run_dir: Path) -> ManifestResult:
        """Merge what the plan's nodes reported; once every task has, write the CSVs."""
        stamp = processing_stamp(processing_key)
        result = ManifestResult(self._url(processing_key), processing_key, run_dir)
        try:
            report = rebuild_reports(run_dir)
            result.pending = int(report.get(PENDING, 0))
            if result.pending:
                return result
            done, failed = rows_from_ledger(run_dir, result, self.columns)
            stem = processing_key.removesuffix(f"processing-{stamp}.csv")
            # Idempotent: two watchers collecting at once write the same files.
            self._write_outcome(result, stem, stamp, done, failed)
            self.source.delete([processing_key])
        except Exception as exc:  # the watcher's own I/O: leave it processing, go on
            result.error = one_line(exc)
        return result

    # running and recording ----------------------------------------------------------------

    def _finish(
        self, manifest_url: str, processing_key: str, stamp: str, data: bytes, lease: Claim | None
    ) -> ManifestResult:
        """Run the recipe on the processing file; turn its record into processed/failed."""
        processing_url = self._url(processing_key)
        run_dir = self._run_dir(processing_key)
        result = ManifestResult(manifest_url, processing_key, run_dir)
        stem = processing_key.removesuffix(f"processing-{stamp}.csv")
        try:
            done, failed = self._run_rows(processing_url, data, run_dir, result)
            if result.abandoned or result.pending:
                return result
            self._write_outcome(result, stem, stamp, done, failed)
            self.source.delete([processing_key])
            if lease is not None:
                self.claims.release(lease)
        except KeyboardInterrupt:
            result.abandoned = True
        except Exception as exc:  # the watcher's own I/O: leave it processing, go on
            result.error = one_line(exc)
        return result

    def _run_rows(
        self, processing_url: str, data: bytes, run_dir: Path, result: ManifestResult
    ) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        """Run the rows; return (done rows, failed rows with ``reason``) from the ledger.

        An empty or unreadable manifest becomes one failed row naming the manifest."""
        try:
            job = build_job(_job_values(self.options, processing_url, run_dir))
            run = run_job(job, callbacks=self.options.callbacks)
        except JobError as exc:
            first = self.columns[0] if self.columns else "manifest"
            return [], [{first: result.manifest, "reason": str(exc)}]
        if run.exit_code == ExitCode.INTERRUPTED:
            result.abandoned = True
            return [], []
        if run.launched:  # a plan executor took the rows: the nodes report later
            result.pending = run.counts[PENDING]
            if result.pending:
                return [], []
        return rows_from_ledger(run_dir, result, self.columns)

    def _write_outcome(
        self,
        result: ManifestResult,
        stem: str,
        stamp: str,
        done: list[dict[str, str]],
        failed: list[dict[str, str]],
    ) -> None:
        result.failed = len(failed)
        if done:
            result.processed_key = state_key(stem, "processed", stamp)
            self.source.put_bytes(format_rows(done, self.columns).encode(), result.processed_key)
        if failed:
            result.failed_key = state_key(stem, "failed", stamp)
            text = format_rows(failed, (*self.columns, "reason"), header=True)
            self.source.put_bytes(text.encode(), result.failed_key)

    def _url(self, key: str) -> str:
        return self.source.location.join(key)

    # looping ------------------------------------------------------------------------------

    def run_forever(self, every_s: float) -> int:
        """Pass every ``every_s`` seconds until SIGTERM or Ctrl-C.

        Returns 0 when stopped between manifests, 130 when a manifest had to be abandoned
        (it stays ``processing`` and a later pass resumes it once stale)."""
        try:
            while True:
                started = time.monotonic()
                outcome = self.run_pass()  # handles an interrupt inside a manifest itself
                log.info("%s", outcome.describe())
                if outcome.interrupted:
                    abandoned = any(m.abandoned for m in outcome.manifests)
                    return ExitCode.INTERRUPTED if abandoned else ExitCode.OK
                time.sleep(max(0.0, every_s - (time.monotonic() - started)))
        except KeyboardInterrupt:  # between passes: nothing was in hand
            return ExitCode.OK


def rows_from_ledger(
    run_dir: Path, result: ManifestResult, columns: tuple[str, ...]
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The run's own record of each row (its source ``columns``): done (succeeded or
    already done) or failed, with the reason."""
    done, failed = [], []
    with closing(Ledger.in_run_dir(run_dir, readonly=True)) as ledger:
        for record in ledger.records():
            row = {column: record.task.source.get(column, "") for column in columns}
            if record.status in DONE_STATES:
                done.append(row)
                result.skipped += record.status == SKIPPED
                result.succeeded += record.status != SKIPPED
            elif record.status == FAILED:
                failed.append({**row, "reason": record.error or "failed"})
            else:
                failed.append({**row, "reason": f"not run ({record.status}) in {run_dir}"})
    return done, failed


def watch(options: WatchOptions) -> int:
    """Run ``tilefleet watch``: one pass (``every_s`` None) or a loop; return the exit status.

    0 all rows done, 1 some rows (or manifests) failed or the source could not be listed,
    130 interrupted while a manifest was being worked on. Invalid options raise
    :class:`JobError` (exit status 3) before anything is claimed.
    """
    watcher = Watcher(options)
    with sigterm_as_interrupt():
        if options.every_s is not None:
            return watcher.run_forever(options.every_s)
        outcome = watcher.run_pass()
        log.info("%s", outcome.describe())
        return outcome.exit_code
