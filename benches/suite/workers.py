#!/usr/bin/env python3
"""How much of caviar's lead over an Optuna sampler survives several workers: two kurobako
suite runs of the same solvers, one sequential and one with --concurrency N, compared problem
by problem.

    python3 benches/suite/workers.py SEQUENTIAL.json CONCURRENT.json [CAVIAR] [OPTUNA]

For each problem: the verdict (two-sided Mann-Whitney at 0.05) of CAVIAR against OPTUNA in
each run, and the lead in each, the difference of mean best values divided by the spread of
all values seen on that problem (so problems of any scale add up). The retained share is the
sum of concurrent leads over the sum of sequential leads, over the problems where caviar led
sequentially.
"""
import statistics
import sys

from scipy.stats import mannwhitneyu

from verdicts import best_values


def verdict(a, b):
    test = mannwhitneyu(a, b, alternative="two-sided")
    if test.pvalue >= 0.05:
        return "tie"
    return "better" if test.statistic < len(a) * len(b) / 2 else "worse"


def main():
    seq, conc = best_values(sys.argv[1]), best_values(sys.argv[2])
    ours = sys.argv[3] if len(sys.argv) > 3 else "caviar-auto"
    theirs = sys.argv[4] if len(sys.argv) > 4 else "optuna-TPESampler"
    print(f"| problem | {ours} 1 worker | {theirs} 1 | verdict 1 | {ours} 4 workers | {theirs} 4 "
          f"| verdict 4 | lead 1 | lead 4 |")
    print("|---" * 9 + "|")
    counts = {1: {}, 4: {}}
    lead_seq = lead_conc = 0.0
    for problem in sorted(seq):
        if problem not in conc:
            continue
        a1, b1 = seq[problem][ours], seq[problem][theirs]
        a4, b4 = conc[problem][ours], conc[problem][theirs]
        everything = a1 + b1 + a4 + b4
        spread = (max(everything) - min(everything)) or 1.0
        v1, v4 = verdict(a1, b1), verdict(a4, b4)
        counts[1][v1] = counts[1].get(v1, 0) + 1
        counts[4][v4] = counts[4].get(v4, 0) + 1
        l1 = (statistics.mean(b1) - statistics.mean(a1)) / spread
        l4 = (statistics.mean(b4) - statistics.mean(a4)) / spread
        if l1 > 0:
            lead_seq += l1
            lead_conc += l4
        print(f"| {problem} | {statistics.mean(a1):.4g} | {statistics.mean(b1):.4g} | {v1} "
              f"| {statistics.mean(a4):.4g} | {statistics.mean(b4):.4g} | {v4} | {l1:.3f} | {l4:.3f} |")
    print()
    for n in (1, 4):
        c = counts[n]
        print(f"{n} worker(s): better {c.get('better', 0)}, tie {c.get('tie', 0)}, "
              f"worse {c.get('worse', 0)}")
    if lead_seq > 0:
        print(f"lead retained with several workers: {lead_conc / lead_seq:.1%} "
              f"(sum of normalised leads {lead_conc:.3f} / {lead_seq:.3f})")


if __name__ == "__main__":
    main()
