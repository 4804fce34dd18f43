"""The buffer arena: blocks are reused across steps, never while any array still uses them."""

import numpy as np
import pytest

import fastres.functional as F
from fastres import arena
from fastres.models import resnet_cifar

BIG = (64, 16, 8, 8)  # 256 KiB in float32: pooled


@pytest.fixture(autouse=True)
def fresh_arena():
    arena.clear()
    yield
    arena.set_enabled(True)
    arena.clear()


def test_block_reused_only_when_free():
    a = arena.empty(BIG, np.float32)
    view = a.reshape(-1)[::2]  # a derived view keeps the block busy
    del a
    b = arena.empty(BIG, np.float32)
    assert not np.shares_memory(b, view)
    del view
    c = arena.empty((64, 16, 8, 4), np.float64)[:, :8]  # same bytes, other dtype: the free one
    assert arena.stats()["blocks"] == 2
    assert not np.shares_memory(b, c)
    held = arena.stats()["bytes_held"]
    del c
    d = arena.empty(BIG, np.float32)
    assert arena.stats()["bytes_held"] == held and not np.shares_memory(b, d)
    assert d.shape == BIG and d.dtype == np.float32 and d.flags.c_contiguous


def test_block_dropped_is_handed_out_next():
    """An output used and dropped before the next request of its size (an op called in a loop,
    a gradient in the backward) gets the same block again, still in cache, rather than the
    free blocks taking turns."""
    held = [arena.empty(BIG, np.float32) for _ in range(3)]
    del held  # three free blocks
    seen = set()
    for _ in range(4):
        a = arena.empty(BIG, np.float32)
        seen.add(a.__array_interface__["data"][0])
        del a
    assert len(seen) == 1 and arena.stats()["blocks"] == 3


def test_small_arrays_and_disabled_are_plain():
    small = arena.empty((3, 4), np.float32)
    assert small.base is None and arena.stats()["blocks"] == 0
    arena.set_enabled(False)
    assert arena.empty(BIG, np.float32).base is None
    with pytest.raises(TypeError, match="arena.set_enabled: expected a bool"):
        arena.set_enabled(1)


def test_held_bytes_bounded(monkeypatch):
    monkeypatch.setattr(arena, "max_bytes", 3 * 2**18)
    keep = [arena.empty(BIG, np.float32) for _ in range(2)]
    for shape in ((32, 16, 8, 8), (16, 16, 8, 8), (8, 16, 16, 16)):
        arena.empty(shape, np.float32)  # dropped right away: free on the next allocation
    assert arena.stats()["bytes_held"] <= 3 * 2**18 + 2**18
    assert arena.stats()["bytes_in_use"] == 2 * 2**18
    del keep


def _train_steps(n, seed=0):
    m = resnet_cifar(8, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((32, 3, 16, 16)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    history = []
    for _ in range(n):
        m.zero_grad()
        logits = m.forward(x)
        loss, dlogits = F.softmax_cross_entropy(logits, y)
        m.backward(dlogits)
        for p in m.parameters():
            p.data -= 0.1 * p.grad
        history.append((loss, logits, [p.grad.copy() for p in m.parameters()]))
        yield history


def test_steady_state_allocates_nothing_and_matches_fresh_memory():
    blocks = []
    for history in _train_steps(4):
        blocks.append(arena.stats()["blocks"])
    assert blocks[2] == blocks[3] > 0  # from the third step on, every block is reused
    # the logits the caller kept from step 1 were not overwritten by later steps
    first_logits = history[0][1]
    arena.set_enabled(False)
    for fresh in _train_steps(4):
        pass
    np.testing.assert_array_equal(first_logits, fresh[0][1])
    for (loss_a, logits_a, grads_a), (loss_b, logits_b, grads_b) in zip(history, fresh):
        assert loss_a == loss_b
        np.testing.assert_array_equal(logits_a, logits_b)
        for ga, gb in zip(grads_a, grads_b):
            np.testing.assert_array_equal(ga, gb)
