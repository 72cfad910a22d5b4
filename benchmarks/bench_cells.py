"""Per-cell height statistics: tilefleet's vectorised reductions against the straightforward
per-child loop (magg's approach: for each of the 4096 children select the points, then numpy
statistics), on 10**7 synthetic points in one order-6 parent. Results are checked equal.

Where numpy runs its AVX-512 kernels, the figure is taken again in a fresh process with
them off (``NPY_DISABLE_CPU_FEATURES``): numpy's AVX-512 sort stores with a masked
compress to memory, which AMD's Zen 4 (AWS's ``*7a`` instances) runs in microcode, so
there numpy's AVX2 sort is 4x faster (10**7 uint64: 0.73 s against 0.17 s), and the one
sort is most of tilefleet's time. Elsewhere the second line shows what AVX-512 gains.

    .venv/bin/python benchmarks/bench_cells.py [--points N] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

from tilefleet.ops.cell_stats import STATISTICS, cell_statistics

CHILDREN = 4096  # order 12 below order 6
#: numpy's AVX-512 targets (``NPY_DISABLE_CPU_FEATURES`` takes them off at import).
AVX512 = "X86_V4 AVX512_ICL AVX512_SPR"


def straightforward(slots, h, s):
    out = {name: np.full(CHILDREN, np.nan) for name in STATISTICS}
    out["count"] = np.zeros(CHILDREN)
    for cell in range(CHILDREN):
        sel = slots == cell
        v = h[sel]
        if v.size == 0:
            continue
        w = 1.0 / s[sel] ** 2
        out["count"][cell] = v.size
        out["h_min"][cell], out["h_max"][cell] = v.min(), v.max()
        out["h_mean"][cell] = np.average(v, weights=w)
        out["h_sigma"][cell] = 1.0 / np.sqrt(w.sum())
        out["h_variance"][cell] = np.var(v)
        out["h_q25"][cell], out["h_q50"][cell], out["h_q75"][cell] = np.quantile(
            v, [0.25, 0.5, 0.75]
        )
    return out


def best_of(repeat, fn, *args):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=10**7)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    slots = rng.integers(0, CHILDREN, args.points)
    h = rng.normal(1500, 400, args.points).astype(np.float32).astype(np.float64)
    s = rng.uniform(0.02, 2.0, args.points)

    ours_s, ours = best_of(args.repeat, cell_statistics, slots, h, s, CHILDREN)
    # The loop is the slow side: one repetition is plenty to time it.
    loop_s, theirs = best_of(1, straightforward, slots, h, s)
    np.testing.assert_array_equal(ours["count"], theirs["count"])
    for name in STATISTICS[1:]:
        np.testing.assert_allclose(ours[name], theirs[name].astype(np.float32), rtol=1e-6)
    disabled = os.environ.get("NPY_DISABLE_CPU_FEATURES")
    kernels = f"NPY_DISABLE_CPU_FEATURES={disabled}" if disabled else "numpy as dispatched"
    print(
        f"cell statistics ({args.points:.0e} points, {CHILDREN} cells, {kernels}): "
        f"tilefleet {ours_s:.2f} s, straightforward {loop_s:.2f} s, ratio {loop_s / ours_s:.1f}",
        flush=True,
    )
    if not disabled and _numpy_runs_avx512():
        env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": AVX512}
        subprocess.run([sys.executable, __file__, *sys.argv[1:]], env=env, check=True)


def _numpy_runs_avx512() -> bool:
    # The table numpy.show_runtime() prints its "found" features from.
    from numpy._core._multiarray_umath import __cpu_features__

    return bool(__cpu_features__.get("X86_V4"))


if __name__ == "__main__":
    main()
