#!/usr/bin/env python3
"""Hypervolume of each kurobako study of a two-objective problem, per solver and problem.

Reads `kurobako run` output (one JSON record per study); the hypervolume of all the study's
evaluated points from the problem's reference point (kurobako's ZDT problems carry one), both
objectives minimised. Prints a Markdown table: mean ± sd per solver, and a two-sided
Mann-Whitney test of each solver against the first Optuna one named on the command line's
--against (default optuna-nsga2).
"""
import collections
import json
import statistics
import sys

from scipy.stats import mannwhitneyu


def hypervolume(points, reference):
    inside = sorted(p for p in points if p[0] < reference[0] and p[1] < reference[1])
    area, ceiling = 0.0, reference[1]
    for x, y in inside:
        if y < ceiling:
            area += (reference[0] - x) * (ceiling - y)
            ceiling = y
    return area


def main(path, against="optuna-nsga2"):
    runs = collections.defaultdict(lambda: collections.defaultdict(list))
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            study = json.loads(line)
            problem = study["problem"]["spec"]
            reference = problem.get("reference_point")
            points = []
            for trial in study["trials"]:
                for e in trial["evaluations"]:
                    if len(e["values"]) == 2:
                        points.append(tuple(e["values"]))
            solver = study["solver"]["spec"]["name"]
            runs[problem["name"]][solver].append(hypervolume(points, reference))
    print(f"| problem | solver | hypervolume (mean ± sd) | runs | vs {against} (Mann-Whitney, two-sided) |")
    print("|---|---|---|---|---|")
    for problem, by_solver in sorted(runs.items()):
        base = by_solver.get(against, [])
        for solver, hv in sorted(by_solver.items()):
            sd = statistics.stdev(hv) if len(hv) > 1 else 0.0
            verdict = ""
            if solver != against and base:
                p = mannwhitneyu(hv, base, alternative="two-sided").pvalue
                mean, other = statistics.mean(hv), statistics.mean(base)
                word = "tie" if p >= 0.05 else ("better" if mean > other else "worse")
                verdict = f"{word} (p = {p:.3g})"
            print(f"| {problem} | {solver} | {statistics.mean(hv):.4f} ± {sd:.4f} | {len(hv)} | {verdict} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
