#!/usr/bin/env bash
# Whole-process-tree CPU seconds and wall time of one command, from the kernel's cgroup v1
# accounting (cpuacct): it counts processes the command does not reap itself, such as the
# Spark JVM and its Python workers, which rusage and /proc sampling miss. Linux, as root.
#   usage: benchmarks/tree_cpu.sh NAME COMMAND [ARG...]
set -uo pipefail
name=$1; shift
cg=/sys/fs/cgroup/cpuacct/analyzer-bench-$name-$$
if ! mkdir -p "$cg" 2>/dev/null; then
  echo "tree_cpu.sh: needs cgroup v1 cpuacct (/sys/fs/cgroup/cpuacct) and root" >&2; exit 2
fi
start=$(date +%s.%N)
( echo "$BASHPID" > "$cg/cgroup.procs"; exec "$@" ) >/dev/null 2>"/tmp/tree_cpu-$name.err"
rc=$?
end=$(date +%s.%N)
python3 - "$name" "$rc" "$start" "$end" "$(cat "$cg/cpuacct.usage")" <<'PY'
import json, sys
name, rc, start, end, ns = sys.argv[1:]
print(json.dumps({"name": name, "exit": int(rc), "wall_s": round(float(end) - float(start), 2),
                  "cpu_s": round(int(ns) / 1e9, 2)}))
PY
rmdir "$cg" 2>/dev/null || true
