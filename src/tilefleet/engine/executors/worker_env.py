"""The environment remote workers need, without secrets.

Workers that tilefleet starts on this machine (local processes, a Dask LocalCluster, a
local Ray) inherit the driver's environment, credentials included; the local executor's
also run numerical libraries on one thread each, as Dask's and Ray's workers do, and keep
the memory of one task for the next (:func:`local_worker_environment`).
Remote workers (a Dask Gateway cluster, a Ray cluster, serverless functions) do not; for
them the adapters forward the *settings* below from the driver: GDAL options, regions and
endpoints. Credentials are never forwarded: they would travel in a job payload or land on
a scheduler's disk. Remote workers get them from their own platform (an IAM role, a
Kubernetes secret, the Lithops runtime's role, the pool's credential mechanism).
"""

from __future__ import annotations

import os
import re

from tilefleet.errors import SECRET_NAME

#: Variables forwarded to remote workers when the driver has them set.
FORWARDED = re.compile(
    r"^(?:GDAL_\w+|CPL_\w+|VSI_\w+|AWS_REGION|AWS_DEFAULT_REGION|AWS_ENDPOINT_URL(?:_S3)?"
    r"|AWS_S3_ENDPOINT|AWS_HTTPS|AWS_VIRTUAL_HOSTING|AWS_REQUEST_PAYER|AWS_NO_SIGN_REQUEST"
    r"|TILEFLEET_\w+)$"
)
#: Thread pools of numerical libraries (OpenMP, OpenBLAS, MKL): one thread each in a
#: worker that tilefleet starts, unless the user set them. Parallelism comes from tasks
#: side by side, one per core; a pool per worker would oversubscribe the cores, and
#: OpenBLAS alone spends 0.1 s of CPU starting one thread per core in each worker.
THREAD_POOLS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: glibc's malloc in a ``local`` worker, unless the user set it: blocks of up to 256 MB
#: come from the heap, and up to 256 MB freed at its top stay there. By default glibc maps
#: each block of over 32 MB (at first, of over 128 kB) afresh and unmaps it when freed, so
#: each task of a worker faults in and zeroes again the pages of the arrays the task before
#: it freed (cogify's 36 real rasters on 1 worker: 85,000 page faults, 0.25 s of system
#: time, about 7 % of the run's time). A worker so holds, between its tasks, up to the
#: memory its biggest task used instead of returning it; it lives for one run. (Dask's
#: nanny does the opposite, returning memory at once: its memory manager pauses and
#: restarts workers by their resident size; these workers' resident size is nobody's
#: signal.)
MALLOC_SETTINGS = {
    "MALLOC_MMAP_THRESHOLD_": str(256 << 20),
    "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
}
#: Names that look like secrets are never forwarded, whatever the pattern says.
SECRET = SECRET_NAME


def forwarded_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The non-secret worker settings present in ``environ`` (default: this process)."""
    environ = os.environ if environ is None else environ
    return {
        name: value
        for name, value in environ.items()
        if FORWARDED.match(name) and not SECRET.search(name)
    }


def is_secret_name(name: str) -> bool:
    """True for variable names that must never be recorded or forwarded."""
    return bool(SECRET.search(name))


def local_worker_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) with :data:`THREAD_POOLS` set to 1 and
    :data:`MALLOC_SETTINGS` where unset: the environment of a worker process of the
    ``local`` executor."""
    environ = dict(os.environ if environ is None else environ)
    for name in THREAD_POOLS:
        environ.setdefault(name, "1")
    for name, value in MALLOC_SETTINGS.items():
        environ.setdefault(name, value)
    return environ
