#!/usr/bin/env bash
# Cost of a study with many parameters: parse + open (--trials 0), then 6 trials of a command
# that reports at once (`echo`: a shell would add its own cost of 20,000 environment
# variables), for spaces of 2,500 to 20,000 parameters (random sampler, SQLite).
#   cargo build --release && bash benches/wide_space.sh
set -euo pipefail
caviar="$(cd "$(dirname "$0")/.." && pwd)/target/release/caviar"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
cd "$dir"
echo "| parameters | parse + open (s) | 6 trials incl. open (s) | per trial (s) | peak RSS (MB) |"
echo "|---|---|---|---|---|"
for n in 2500 5000 10000 20000; do
  {
    printf 'name = "w%d"\ndirection = "maximize"\nmetric = "val_acc"\ntrials = 6\nworkers = 1\n' "$n"
    printf 'command = ["echo", "val_acc=0.5"]\n[params]\n'
    for ((i = 0; i < n; i++)); do printf 'p%05d = { low = 0.0, high = 1.0 }\n' "$i"; done
  } > "w$n.toml"
  /usr/bin/time -o open.txt -f "%e" "$caviar" --storage "sqlite:o$n.db" run "w$n.toml" --trials 0 >/dev/null 2>&1
  /usr/bin/time -o run.txt -f "%e %M" "$caviar" --storage "sqlite:r$n.db" run "w$n.toml" >/dev/null 2>&1
  open=$(cat open.txt)
  read -r run rss < run.txt
  per=$(python3 -c "print(f'{($run - $open) / 6:.3f}')")
  echo "| $n | $open | $run | $per | $((rss / 1024)) |"
done
