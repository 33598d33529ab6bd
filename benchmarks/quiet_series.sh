#!/bin/bash
# Wall / CPU / peak RSS of every reading command on the rollup benchmark's stores, three runs
# each, for a quiet machine (issue 11's 5 s target is wall time on 2 cores).
#   benchmarks/quiet_series.sh WORK [SIZE ...]   (WORK as given to bench_rollup.py --work)
# prints SIZE|COMMAND|wall s|user s|system s|peak RSS KB per run
set -u
work=$1; shift
sizes=("${@:-1000000 10000000}")
analyzer=${ANALYZER:-analyzer}
err=$(mktemp)
for size in ${sizes[@]}; do
  gen=$work/gen-$size store=$work/store-$size
  given=(--inventory "$gen/inventory.json" --policies "$gen/existing-policies.yaml")
  for _ in 1 2 3; do
    for cmd in "graph|graph -o json" "recommend -n production|recommend -n production -o json ${given[*]}" \
      "recommend|recommend -o json ${given[*]}" "anomalies|anomalies -o json" \
      "audit|audit -o json ${given[*]}" "report|report ${given[*]} --out $err.html" \
      "stats|stats -o json" "simulate|simulate ${given[*]}"; do
      name=${cmd%%|*}
      # shellcheck disable=SC2086
      /usr/bin/time -f "$size|$name|%e|%U|%S|%M" "$analyzer" ${cmd#*|} --store "$store" \
        > /dev/null 2> "$err" || { echo "FAILED $size $name" >&2; cat "$err" >&2; }
      tail -1 "$err"
    done
  done
done
rm -f "$err" "$err.html"
