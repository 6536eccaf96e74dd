#!/usr/bin/env python3
"""Per-problem verdicts of a kurobako suite run: each solver's best value found (minimised),
mean ± sd over the repeats, and a two-sided Mann-Whitney test at 0.05 of every caviar solver
against every Optuna one: better, worse or tie. Ends with the counts per pair.

    python3 benches/suite/verdicts.py RESULTS.json [BUDGET]

With BUDGET, each study's best is taken over its first BUDGET trials only, so one run at
budget 100 also gives the verdicts at 50. RESULTS.json may also be the compact form of
`benches/results/*_values.jsonl`: one line per study, {"problem", "solver", "values": [each
trial's final value or null]}, so a later run of one solver can be judged against Optuna's
kept results (every solver is seeded, so Optuna's do not change) by concatenating the files.
"""
import collections
import json
import statistics
import sys

from scipy.stats import mannwhitneyu

from compact import trial_values


def best_values(path, budget=None):
    best = collections.defaultdict(lambda: collections.defaultdict(list))
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            study = json.loads(line)
            if "values" in study:
                # The compact form kept in benches/results: each trial's final value or null.
                every, name, solver = study["values"], study["problem"], study["solver"]
            else:
                every = trial_values(study)
                name = study["problem"]["spec"]["name"]
                solver = study["solver"]["spec"]["name"]
            values = [v for v in every[:budget] if v is not None]
            best[name][solver].append(min(values) if values else float("inf"))
    return best


def main():
    path = sys.argv[1]
    budget = int(sys.argv[2]) if len(sys.argv) > 2 else None
    best = best_values(path, budget)
    solvers = sorted({s for by in best.values() for s in by})
    ours = [s for s in solvers if s.startswith("caviar")]
    theirs = [s for s in solvers if not s.startswith("caviar")]
    counts = collections.Counter()
    print(f"budget: {budget or 'all'}\n")
    print("| problem | " + " | ".join(solvers) + " | " + " | ".join(
        f"{o} vs {t}" for o in ours for t in theirs) + " |")
    print("|---" * (1 + len(solvers) + len(ours) * len(theirs)) + "|")
    for problem in sorted(best):
        by = best[problem]
        cells = []
        for s in solvers:
            v = by.get(s, [])
            cells.append(f"{statistics.mean(v):.4g} ± {statistics.stdev(v):.2g}" if len(v) > 1 else "-")
        verdicts = []
        for o in ours:
            for t in theirs:
                a, b = by.get(o, []), by.get(t, [])
                if len(a) < 2 or len(b) < 2:
                    verdicts.append("-")
                    continue
                test = mannwhitneyu(a, b, alternative="two-sided")
                p = test.pvalue
                # U below half of its range: the first sample's values tend to be smaller.
                smaller = test.statistic < len(a) * len(b) / 2
                word = "tie" if p >= 0.05 else ("better" if smaller else "worse")
                counts[(o, t, word)] += 1
                verdicts.append(f"{word} ({p:.2g})")
        print(f"| {problem} | " + " | ".join(cells) + " | " + " | ".join(verdicts) + " |")
    print()
    for o in ours:
        for t in theirs:
            print(f"{o} vs {t}: better {counts[(o, t, 'better')]}, tie {counts[(o, t, 'tie')]}, "
                  f"worse {counts[(o, t, 'worse')]}")


if __name__ == "__main__":
    main()
