"""Real-ESRGAN's training-pair pool (queue_size): batches mixed across iterations, reproducibly.

The pool is Real-ESRGAN's ``_dequeue_and_enqueue`` (realesrgan_model.py); its exact resume is tested with
kill -9 in test_train_resume.py.
"""
import pytest
import torch

from swinir_app.train.pool import PairPool
from helpers import tiny_options, write_pairs


def batch(k, b=2):
    """Batch k: pair ids k*b .. k*b+b-1, written into both LQ and GT (so the pairing can be checked)."""
    ids = torch.arange(k * b, k * b + b, dtype=torch.float32)
    return ids.view(b, 1, 1, 1).expand(b, 1, 2, 2).clone(), ids.view(b, 1, 1, 1).expand(b, 1, 4, 4).clone()


def ids(t):
    return t[:, 0, 0, 0].long().tolist()


def test_the_pool_fills_then_trains_on_earlier_pairs_each_once():
    pool = PairPool(6, seed=3)
    seen = []
    for it in range(1, 4):  # filling: each batch trains as it comes
        lq, gt = pool.swap(*batch(it - 1), it)
        assert ids(lq) == ids(gt) == [2 * (it - 1), 2 * (it - 1) + 1]
    for it in range(4, 40):
        lq, gt = pool.swap(*batch(it - 1), it)
        assert ids(lq) == ids(gt)  # LQ and GT stay paired
        assert all(i < 2 * (it - 1) for i in ids(lq))  # only pairs loaded before this batch
        seen += ids(lq)
    held = ids(pool.lq)
    # Every pair loaded after the filling comes out exactly once, or is still in the pool.
    assert sorted(seen + held) == list(range(0, 78))
    assert seen != sorted(seen)  # mixed, not first-in first-out
    with pytest.raises(ValueError, match="queue_size 6 is not a multiple of the batch size 4"):
        PairPool(6, 0).swap(*batch(0, 4), 1)


def test_the_shuffle_is_a_function_of_seed_rank_and_iteration_and_the_state_round_trips():
    def run(seed, rank, stop=None, state=None):
        pool = PairPool(4, seed, rank)
        if state is not None:
            pool.load_state_dict(state, torch.device("cpu"))
        out = []
        for it in range(1 if state is None else stop + 1, 12):
            if it == stop and state is None:
                out.append(ids(pool.swap(*batch(it - 1), it)[0]))
                return out, pool.state_dict()
            out.append(ids(pool.swap(*batch(it - 1), it)[0]))
        return out, None

    straight, _ = run(1, 0)
    assert straight == run(1, 0)[0] and straight != run(2, 0)[0] and straight != run(1, 1)[0]
    first, state = run(1, 0, stop=6)
    second, _ = run(1, 0, stop=6, state=state)
    assert first + second == straight
    with pytest.raises(ValueError, match="the saved pool holds 4 pairs, queue_size is 8"):
        PairPool(8, 1).load_state_dict(state, torch.device("cpu"))


def test_queue_size_must_be_a_multiple_of_the_batch(tmp_path):
    from swinir_app.options import OptionsError
    from swinir_app.train import load_options
    hr, lr = write_pairs(tmp_path, scale=2, size=(48, 64))
    opt = tiny_options(tmp_path, hr, lr, name="q", queue_size=5)
    with pytest.raises(OptionsError, match=r"queue_size: 5 is not a multiple of datasets.train.batch_size_per_gpu"):
        load_options(opt)
