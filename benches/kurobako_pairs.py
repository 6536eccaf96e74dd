#!/usr/bin/env python3
"""Splits a kurobako results file into one file per (optuna-tpe, caviar-X) pair, so that each
`kurobako report` ranks exactly two solvers: kurobako's ranks come from pairwise tests among all
solvers in a report, so the rank of two solvers can shift with which others are present.
    python3 benches/kurobako_pairs.py RESULTS.json OUTDIR"""
import json
import sys
from collections import defaultdict

results, out = sys.argv[1], sys.argv[2]
by_solver = defaultdict(list)
with open(results) as f:
    for line in f:
        if line.strip():
            by_solver[json.loads(line)["solver"]["spec"]["name"]].append(line)
for name in sorted(by_solver):
    if name.startswith("caviar-"):
        with open(f"{out}/pair-{name}.json", "w") as f:
            f.writelines(by_solver["optuna-tpe"] + by_solver[name])
        print(f"{out}/pair-{name}.json")
