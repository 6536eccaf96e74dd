#!/usr/bin/env python3
"""Keeps what the verdicts need of a kurobako results file: one JSON line per study, {"problem",
"solver", "values": [each trial's final value or null]}, about 1% of the original size.

    python3 benches/suite/compact.py RESULTS.json [SOLVER ...] > VALUES.jsonl

With SOLVER names, only their studies are kept. verdicts.py and workers.py read the output,
alone or concatenated with another run's: every solver is seeded, so a kept Optuna study is a
valid sample of that solver. It is not always a replica: on another machine or library version
a configuration's value can differ (scikit-learn's network on mlp-digits scored 61 or 88
misclassified digits for the same parameters), and the study goes its own way from there.
A line that is not whole (a run stopped midway) is skipped.
"""
import json
import sys


def trial_values(study):
    """Each trial's final value in a kurobako study record, or None where it has none."""
    values = []
    for trial in study["trials"]:
        last = trial["evaluations"][-1:]
        values.append(last[0]["values"][0] if last and last[0]["values"] else None)
    return values


def main():
    path, only = sys.argv[1], set(sys.argv[2:])
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                study = json.loads(line)
            except json.JSONDecodeError:
                # The last line of a run that was stopped.
                print(f"skipped a line that is not whole: {line[:60]}...", file=sys.stderr)
                continue
            solver = study["solver"]["spec"]["name"]
            if only and solver not in only:
                continue
            print(json.dumps({"problem": study["problem"]["spec"]["name"], "solver": solver,
                              "values": trial_values(study)}, separators=(",", ":")))


if __name__ == "__main__":
    main()
