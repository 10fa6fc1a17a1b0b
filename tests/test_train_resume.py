"""Exact resume: 2N straight iterations == N, kill -9 in the middle of what follows, --auto_resume to 2N.

Same weights, EMA and optimizer to 1e-6 on deterministic CPU: the data order and crops, the drop-path
RNG, the schedule, the Adam state and the training-pair pool (queue_size) all continue where they
were. The resumed run loads its batches with a worker process where the others use none: the data
does not depend on that either.
"""
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from helpers import tiny_options, write_pairs

N = 4


def command(opt, *extra):
    return [sys.executable, "-m", "swinir_app.train", "-opt", str(opt), *extra]


def env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def run(opt, *extra, timeout=240):
    done = subprocess.run(command(opt, *extra), env=env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def weights(exp, it):
    return torch.load(exp / "models" / f"net_g_{it}.pth", weights_only=True)


def max_diff(a, b):
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


@pytest.mark.slow
def test_kill_9_then_auto_resume_gives_the_straight_run(tmp_path):
    hr, lr = write_pairs(tmp_path, scale=2, size=(80, 96))
    # drop_path 0.1 draws random numbers every step; patch 48, batch 4: a few tens of ms per iteration.
    # queue_size 8 (two batches): the pair pool is full from iteration 3 and is restored with the state.
    common = dict(total_iter=2 * N, val={"val_freq": N}, train={"ema_decay": 0.9, "warmup_iter": 2},
                  logger={"save_checkpoint_freq": N, "print_freq": 1}, queue_size=8)
    opt = tiny_options(tmp_path, hr, lr, name="straight", **common)
    text = opt.read_text().replace("gt_size: 32", "gt_size: 48")
    text = text.replace("batch_size_per_gpu: 2", "batch_size_per_gpu: 4")
    opt.write_text(text)
    killed_opt = tmp_path / "killed.yml"
    killed_opt.write_text(text.replace("straight", "killed"))

    run(opt)
    straight = tmp_path / "experiments" / "straight"

    killed = tmp_path / "experiments" / "killed"
    proc = subprocess.Popen(command(killed_opt), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while not (killed / "training_states" / f"{N}.state").exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the first state never appeared"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)  # somewhere in iteration N+1 (or its validation/saving)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    if (killed / "training_states" / f"{2 * N}.state").exists():
        pytest.skip("the run finished before the kill reached it (a very loaded machine)")

    out = run(killed_opt, "--auto_resume", "--force_yml", "datasets:train:num_worker_per_gpu=1")
    assert f"resumed from {killed / 'training_states' / f'{N}.state'} at iteration {N}" in out

    a, b = weights(straight, 2 * N), weights(killed, 2 * N)
    print(f"max |straight - resumed|: params {max_diff(a['params'], b['params']):.3g}, "
          f"params_ema {max_diff(a['params_ema'], b['params_ema']):.3g}")
    assert max_diff(a["params"], b["params"]) <= 1e-6
    assert max_diff(a["params_ema"], b["params_ema"]) <= 1e-6
    assert max_diff(a["params"], weights(straight, N)["params"]) > 1e-4  # the second half did train
    sa = torch.load(straight / "training_states" / f"{2 * N}.state", weights_only=True)
    sb = torch.load(killed / "training_states" / f"{2 * N}.state", weights_only=True)
    for (ka, va), (kb, vb) in zip(sa["optimizers"][0]["state"].items(), sb["optimizers"][0]["state"].items()):
        assert max_diff(va, vb) <= 1e-6
    # The same losses were logged after the resume as in the straight run.
    losses = lambda t: [l for l in t.splitlines() if f"[iter {2 * N}/" in l][0].split("loss ")[1].split()[0]  # noqa
    straight_log = next(straight.glob("*.log")).read_text()
    resumed_log = sorted(killed.glob("*.log"))[-1].read_text()
    assert losses(straight_log) == losses(resumed_log)


def test_progress_shows_from_the_start_and_ctrl_c_is_one_line(tmp_path):
    hr, lr = write_pairs(tmp_path, scale=2, size=(48, 64))
    opt = tiny_options(tmp_path, hr, lr, name="ctrlc", total_iter=100000, val={"val_freq": 10 ** 6},
                       logger={"save_checkpoint_freq": 3, "print_freq": 1000, "use_tb_logger": False})
    log = tmp_path / "out.txt"
    with open(log, "w") as out:
        proc = subprocess.Popen(command(opt), env=env(), stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 180
            while "[iter 10/100000]" not in log.read_text():
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "no progress line after 10 iterations"
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert proc.returncode == 130, text[-3000:]
    # Lines after 1 and 10 iterations, long before print_freq, with speed and ETA.
    assert re.search(r"\[iter 1/100000\] loss \S+ lr \S+ [\d.]+ it/s eta ", text)
    assert re.search(r"\[iter 10/100000\] loss \S+ lr \S+ [\d.]+ it/s eta ", text)
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    last = text.strip().splitlines()[-1]
    m = re.fullmatch(r"interrupted at iteration (\d+); the last checkpoint is (\d+) \((.*)\); "
                     r"resume with --auto_resume", last)
    assert m, last
    it, saved, state = int(m.group(1)), int(m.group(2)), m.group(3)
    assert saved % 3 == 0 and saved <= it and state.endswith(f"training_states/{saved}.state")
    assert saved == max(int(p.stem) for p in (tmp_path / "experiments" / "ctrlc" / "training_states").glob("*.state"))
