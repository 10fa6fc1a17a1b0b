#!/usr/bin/env bash
# Retrain the bundled models on ../shared/trainsets (issue 32) on this machine's CPU:
#   retrain_bundled_x4 -> retrain_bundled_real_x4 (from the new x4), and retrain_bundled_dn (independent).
# Usage: scripts/retrain_bundled.sh [STAGE ...]   (default: all three, in that order)
# Every stage runs with --auto_resume under `nice -n 10`, so rerunning this script after a kill, a reboot or
# the end of a session continues where the last checkpoint left off (every 500 iterations); a finished stage
# (experiments/<stage>/DONE) is skipped, and a stage another launcher is training (its lock is held) too, so
# two launchers can share the work: e.g. `OMP_NUM_THREADS=1 scripts/retrain_bundled.sh retrain_bundled_dn`
# beside the default chain. Start it detached, from the repository root, so that it outlives its shell:
#   setsid nohup scripts/retrain_bundled.sh > experiments/retrain.log 2>&1 < /dev/null &
# Check it:   cat experiments/retrain_status.txt; tail experiments/retrain_bundled_x4/train_*.log
# Stop it:    kill -- -$(cat experiments/<stage>.pid)  (its launcher's process group; start it again to resume)
# Environment: PYTHON (default .venv/bin/python), OMP_NUM_THREADS (default 2),
#   RETRAIN_EXPERIMENTS (default experiments: where the stage folders, status and lock files go),
#   RETRAIN_SNAPSHOT=0 to run the working tree's swinir_app instead of the frozen copy (see below),
#   RETRAIN_FORCE_YML: extra --force_yml overrides for every stage (e.g. "train:amp=null" on a CPU without
#   native bf16, "logger:save_checkpoint_freq=10" in a quick trial).
set -u
cd "$(dirname "$0")/.."
ROOT=${RETRAIN_EXPERIMENTS:-experiments}
PY=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
ALL="retrain_bundled_x4 retrain_bundled_real_x4 retrain_bundled_dn"
STAGES=${*:-$ALL}
STATUS=$ROOT/retrain_status.txt
mkdir -p "$ROOT"
for name in $STAGES; do
    case " $ALL " in *" $name "*) ;; *) echo "unknown stage '$name' (the stages: $ALL)"; exit 2 ;; esac
done

status() {  # this stage's line of the status file (one line per stage), replaced atomically under a lock
    (
        flock 8
        { grep -v "^[0-9-]* [0-9:]* $current: " "$STATUS" 2>/dev/null
          echo "$(date '+%Y-%m-%d %H:%M:%S') $current: $*"; } > "$STATUS.tmp.$$" && mv -f "$STATUS.tmp.$$" "$STATUS"
    ) 8> "$ROOT/.status.lock"
    echo "== $current: $*"
}

last_state() {  # the latest complete training state of stage $current ("none" before the first)
    ls "$ROOT/$current/training_states" 2>/dev/null | sed -n 's/^\([0-9]*\)\.state$/\1/p' | sort -n | tail -1 | grep . || echo none
}

current="launcher"
trap 'status "KILLED (signal) at checkpoint $(last_state); rerun scripts/retrain_bundled.sh to resume"; exit 143' TERM INT HUP

# The training code is frozen at the first start: a copy of the committed swinir_app (git archive HEAD) in
# $ROOT/retrain_src, imported with `python -P` (no current folder on sys.path), so that edits to the working
# tree during the days of training can neither break a resume nor change the recipe halfway.
# The options files and data lists are read from options/ as usual.
RUN=("$PY")
if [ "${RETRAIN_SNAPSHOT:-1}" != 0 ]; then
    SRC=$ROOT/retrain_src
    exec 7> "$ROOT/.snapshot.lock" && flock 7
    if [ ! -f "$SRC/COMMIT" ]; then
        rm -rf "$SRC.tmp" && mkdir -p "$SRC.tmp" && git archive HEAD swinir_app | tar -x -C "$SRC.tmp" &&
            git rev-parse HEAD > "$SRC.tmp/COMMIT" && rm -rf "$SRC" && mv "$SRC.tmp" "$SRC" ||
            { status "FAILED: could not snapshot swinir_app from git HEAD into $SRC"; exit 1; }
    fi
    exec 7>&-
    export PYTHONPATH="$(cd "$SRC" && pwd)${PYTHONPATH:+:$PYTHONPATH}"
    RUN=("$PY" -P)
    echo "training code: $SRC (commit $(cat "$SRC/COMMIT"))"
fi

for name in $STAGES; do
    exp=$ROOT/$name
    current=$name
    if [ -f "$exp/DONE" ]; then
        echo "$name: finished earlier ($(cat "$exp/DONE")), skipped"
        continue
    fi
    if [ "$name" = retrain_bundled_real_x4 ] && [ ! -f "$ROOT/retrain_bundled_x4/DONE" ]; then
        echo "$name: waits for retrain_bundled_x4 to finish (it starts from its weights), skipped"
        continue
    fi
    # The lock and pid live beside the stage folder: the trainer archives a folder it does not resume from.
    exec 9> "$ROOT/$name.lock"
    if ! flock -n 9; then
        echo "$name: another launcher is training it (pid $(cat "$ROOT/$name.pid" 2>/dev/null)), skipped"
        exec 9>&-
        continue
    fi
    echo $$ > "$ROOT/$name.pid"
    # shellcheck disable=SC2206  # RETRAIN_FORCE_YML is a list of words
    force=(${RETRAIN_FORCE_YML:-})
    if [ "$ROOT" != experiments ]; then  # keep the stages together, pretrained weights included
        force+=(path:experiments_root="$exp")
        case $name in
            retrain_bundled_real_x4) force+=(path:pretrain_network_g="$ROOT/retrain_bundled_x4/models/net_g_latest.pth") ;;
        esac
    fi
    status "running (from checkpoint $(last_state); log $exp/train_${name}_*.log)"
    nice -n 10 "${RUN[@]}" -m swinir_app.train -opt "options/$name.yml" --auto_resume \
        ${force[@]+--force_yml "${force[@]}"}
    rc=$?
    if [ $rc != 0 ]; then
        status "STOPPED (exit $rc) at checkpoint $(last_state); rerun scripts/retrain_bundled.sh to resume"
        exit $rc
    fi
    echo "iteration $(last_state), $(date '+%Y-%m-%d %H:%M:%S')" > "$exp/DONE"
    status "done at iteration $(last_state)"
    exec 9>&-
done
