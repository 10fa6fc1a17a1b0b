#!/usr/bin/env bash
# Retrain the three bundled models on ../shared/trainsets (issue 32), one after another, on this machine's CPU:
#   retrain_bundled_x4 -> retrain_bundled_real_x4 (from the new x4) -> retrain_bundled_dn -> retrain_bundled_dn_gray
# Every stage runs with --auto_resume under `nice -n 10`, so rerunning this script after a kill or a reboot
# continues where the last checkpoint left off; a finished stage (experiments/<name>/DONE) is skipped.
# Start it detached, from the repository root, so that it outlives the shell that started it:
#   setsid nohup scripts/retrain_bundled.sh > experiments/retrain.log 2>&1 &
# Check it:   cat experiments/retrain_status.txt; tail experiments/retrain_bundled_x4/train_*.log
# Stop it:    kill -- -$(cat experiments/retrain.pid)      (the whole process group; resume by starting it again)
# Environment: PYTHON (default .venv/bin/python), OMP_NUM_THREADS (default 2),
#   RETRAIN_EXPERIMENTS (default experiments: where the stage folders, status and pid files go),
#   RETRAIN_SNAPSHOT=0 to run the working tree's swinir_app instead of the frozen copy (see below),
#   RETRAIN_FORCE_YML: extra --force_yml overrides for every stage (tests: "logger:save_checkpoint_freq=10").
set -u
cd "$(dirname "$0")/.."
ROOT=${RETRAIN_EXPERIMENTS:-experiments}
PY=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
STAGES="retrain_bundled_x4 retrain_bundled_real_x4 retrain_bundled_dn retrain_bundled_dn_gray"
STATUS=$ROOT/retrain_status.txt
mkdir -p "$ROOT"

status() {  # one line, replaced atomically
    echo "$(date '+%Y-%m-%d %H:%M:%S') $*" > "$STATUS.tmp" && mv -f "$STATUS.tmp" "$STATUS"
    echo "== $(cat "$STATUS")"
}

last_state() {  # the latest complete training state of stage $current ("none" before the first)
    ls "$ROOT/$current/training_states" 2>/dev/null | sed -n 's/^\([0-9]*\)\.state$/\1/p' | sort -n | tail -1 | grep . || echo none
}

# One launcher at a time (a second start while one runs would train the same folder twice).
exec 9> "$ROOT/retrain.lock"
if ! flock -n 9; then
    echo "another scripts/retrain_bundled.sh holds $ROOT/retrain.lock (pid $(cat "$ROOT/retrain.pid" 2>/dev/null)); not starting"
    exit 1
fi
echo $$ > "$ROOT/retrain.pid"
current="starting"
trap 'status "$current: KILLED (signal) at checkpoint $(last_state); rerun scripts/retrain_bundled.sh to resume"; exit 143' TERM INT HUP

# The training code is frozen at the first start: a copy of the committed swinir_app (git archive HEAD) in
# $ROOT/retrain_src, imported with `python -P` (no current folder on sys.path), so that edits to the working
# tree during the day-and-a-half of training can neither break a resume nor change the recipe halfway.
# The options files and data lists are read from options/ as usual.
RUN=("$PY")
if [ "${RETRAIN_SNAPSHOT:-1}" != 0 ]; then
    SRC=$ROOT/retrain_src
    if [ ! -f "$SRC/COMMIT" ]; then
        rm -rf "$SRC.tmp" && mkdir -p "$SRC.tmp" && git archive HEAD swinir_app | tar -x -C "$SRC.tmp" &&
            git rev-parse HEAD > "$SRC.tmp/COMMIT" && rm -rf "$SRC" && mv "$SRC.tmp" "$SRC" ||
            { status "FAILED: could not snapshot swinir_app from git HEAD into $SRC"; exit 1; }
    fi
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
    # shellcheck disable=SC2206  # RETRAIN_FORCE_YML is a list of words
    force=(${RETRAIN_FORCE_YML:-})
    if [ "$ROOT" != experiments ]; then  # keep the stages together, pretrained weights included
        force+=(path:experiments_root="$exp")
        case $name in
            retrain_bundled_real_x4) force+=(path:pretrain_network_g="$ROOT/retrain_bundled_x4/models/net_g_latest.pth") ;;
            retrain_bundled_dn_gray) force+=(path:pretrain_network_g="$ROOT/retrain_bundled_dn/models/net_g_latest.pth") ;;
        esac
    fi
    status "$name: running (from checkpoint $(last_state); log $exp/train_${name}_*.log)"
    nice -n 10 "${RUN[@]}" -m swinir_app.train -opt "options/$name.yml" --auto_resume \
        ${force[@]+--force_yml "${force[@]}"}
    rc=$?
    if [ $rc != 0 ]; then
        status "$name: STOPPED (exit $rc) at checkpoint $(last_state); rerun scripts/retrain_bundled.sh to resume"
        exit $rc
    fi
    echo "iteration $(last_state), $(date '+%Y-%m-%d %H:%M:%S')" > "$exp/DONE"
    status "$name: done at iteration $(last_state)"
done
status "all done: $STAGES; convert with python -m swinir_app.convert (see the options files' headers)"
