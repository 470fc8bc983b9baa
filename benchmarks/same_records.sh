#!/usr/bin/env bash
# A refactor must not change the data: the same command with the same seed (scripted model,
# the built-in pool and an executing environment) at two commits, records compared byte for
# byte with seconds zeroed.   bash benchmarks/same_records.sh COMMIT_BEFORE COMMIT_AFTER
set -e
REPO=$(cd "$(dirname "$0")/.." && pwd); PY="$REPO/.venv/bin/python"
WORK=$(mktemp -d)
A=$1; B=$2; OUT="$WORK"/$A-$B; rm -rf $OUT; mkdir -p $OUT
for c in $A $B; do
  rm -rf "$WORK"/tree-$c; git -C "$REPO" worktree add -q --detach "$WORK"/tree-$c $c
  for spec in builtin python:tests.tools_module; do
    name=$(echo $spec | tr ':.' '__')
    (cd "$WORK"/tree-$c && PYTHONPATH="$WORK"/tree-$c/src nice -n 19 "$PY" -m naig.cli generate -t $spec -n 3 --model scripted:0 --seed 5 --subtasks 2 --steps 1-2 --no-cache -o $OUT/$c-$name.jsonl > /dev/null 2>&1 || true)
    "$PY" -c "
import json,sys
def z(o):
    if isinstance(o,dict): return {k:(0 if k=='seconds' else z(v)) for k,v in o.items()}
    if isinstance(o,list): return [z(v) for v in o]
    return o
for p in ['$OUT/$c-$name.jsonl', '$OUT/$c-$name.rejected.jsonl']:
    try: lines=open(p).read().splitlines()
    except FileNotFoundError: lines=[]
    open(p+'.z','w').write('\n'.join(json.dumps(z(json.loads(l))) for l in lines))
"
  done
  git -C "$REPO" worktree remove --force "$WORK"/tree-$c
done
for spec in builtin python:tests.tools_module; do
  name=$(echo $spec | tr ':.' '__')
  for suf in jsonl rejected.jsonl; do
    a=$OUT/$A-$name.$suf.z; b=$OUT/$B-$name.$suf.z
    n=$(grep -c . $a || true); if cmp -s $a $b; then echo "$spec $suf: $n records, identical"; else echo "$spec $suf: DIFFER"; fi
  done
done
