#!/usr/bin/env python3
"""Reference values for loadgate's Mann-Whitney U test (src/checks/mannwhitney.rs).

Writes mannwhitneyu.json next to this file: every case's two samples, the alternative and
method asked for, and what scipy.stats.mannwhitneyu answered (statistic = U of x, p-value).
tests/canary_judge.rs reads the file and asserts loadgate's answers match.

    pip install scipy && python3 testdata/canary/gen_mannwhitneyu.py
"""
import json
import os

import numpy as np
import scipy
from scipy.stats import mannwhitneyu

rng = np.random.default_rng(20261130)
cases = []


def case(name, x, y, alternative, method, use_continuity=True):
    r = mannwhitneyu(x, y, alternative=alternative, method=method,
                     use_continuity=use_continuity)
    cases.append({
        "name": name,
        "x": [float(v) for v in x],
        "y": [float(v) for v in y],
        "alternative": alternative,
        "method": method,
        "use_continuity": use_continuity,
        "statistic": float(r.statistic),
        "pvalue": float(r.pvalue),
        # Hodges-Lehmann shift estimate: median of every difference x_i - y_j.
        "hodges_lehmann": float(np.median(np.subtract.outer(np.asarray(x, float),
                                                            np.asarray(y, float)))),
    })


for alt in ["greater", "less", "two-sided"]:
    # Tiny samples, no ties: exact distribution.
    case(f"tiny-exact-{alt}", [1.2, 3.4, 5.6], [0.5, 0.7, 2.2, 4.0], alt, "exact")
    case(f"tiny-auto-{alt}", [10, 11, 14, 19, 25], [1, 4, 9, 12, 13, 15, 16], alt, "auto")
    case(f"small-one-side-auto-{alt}", list(rng.normal(10, 2, 6)),
         list(rng.normal(11, 2, 40)), alt, "auto")
    # Ties: auto falls back to the normal approximation with the tie correction.
    case(f"ties-auto-{alt}", [1, 2, 2, 3, 3, 3, 4], [2, 3, 4, 4, 5, 5, 6, 6], alt, "auto")
    case(f"ties-asymptotic-{alt}", [5, 5, 5, 6, 7, 7, 8, 9, 9, 9, 10],
         [4, 5, 5, 6, 6, 6, 7, 8, 8], alt, "asymptotic")
    case(f"ties-no-continuity-{alt}", [1, 2, 2, 3, 3, 3, 4], [2, 3, 4, 4, 5, 5, 6, 6],
         alt, "asymptotic", use_continuity=False)
    # Large samples: latency-like data rounded to 10 us (histogram resolution: many ties).
    base = np.round(rng.lognormal(np.log(20.0), 0.3, 2000), 2)
    slow = np.round(rng.lognormal(np.log(21.0), 0.3, 1500), 2)
    case(f"large-latency-{alt}", list(slow), list(base), alt, "auto")
    same = np.round(rng.lognormal(np.log(20.0), 0.3, 1200), 2)
    case(f"large-same-{alt}", list(same), list(base[:900]), alt, "asymptotic")
    # Large, no ties.
    case(f"large-continuous-{alt}", list(rng.normal(0.1, 1, 300)),
         list(rng.normal(0, 1, 350)), alt, "asymptotic")

out = {
    "generator": "scipy.stats.mannwhitneyu",
    "scipy": scipy.__version__,
    "numpy": np.__version__,
    "cases": cases,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mannwhitneyu.json")
with open(path, "w") as f:
    # One case per line: the file stays diffable without a line per number.
    head = {k: v for k, v in out.items() if k != "cases"}
    f.write(json.dumps(head)[:-1] + ', "cases": [\n')
    f.write(",\n".join(json.dumps(c) for c in cases))
    f.write("\n]}\n")
print(f"{len(cases)} cases -> {path}")
