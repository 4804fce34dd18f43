"""Mini-batches for training: seeded per-epoch shuffling and augmentation, prepared in a
background thread so they overlap the training step."""

from __future__ import annotations

import queue
import threading

import numpy as np

__all__ = ["BatchLoader"]

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class BatchLoader:
    """Iterate over ``(xb, yb)`` mini-batches of ``(x, y)``.

    The permutation and the augmentation randomness of epoch ``e`` come only from
    ``np.random.default_rng([seed, epoch])``, so ``iter_epoch(e)`` yields the same batches, bit
    for bit, whenever it is called: a run resumed at an epoch boundary reproduces exactly.

    Parameters
    ----------
    x : ndarray (N, C, H, W), or any sized object indexable by an int array (`FolderDataset`)
    y : ndarray (N,)
    batch_size : int
    shuffle : bool
        Permute each epoch (else the stored order).
    augment : callable ``augment(xb, rng) -> xb``, optional
        Applied to each training batch (e.g. `parse_augment("crop,flip")`).
    seed : int
    drop_last : bool
        Drop the final partial batch.
    prefetch : int
        Batches prepared ahead in a background thread (0: prepare in the caller's thread).
        NumPy releases the GIL in bulk operations, so augmentation overlaps the training step.
    """

    def __init__(self, x, y, batch_size: int, *, shuffle: bool = True, augment=None,
                 seed: int = 0, drop_last: bool = False, prefetch: int = 2):
        n = len(x)
        if len(y) != n:
            raise ValueError(f"BatchLoader: x has {n} samples but y has {len(y)}")
        for name, v, lo in (("batch_size", batch_size, 1), ("prefetch", prefetch, 0),
                            ("seed", seed, 0)):  # ints: 2.5 must not become 2
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"BatchLoader: {name} must be an int >= {lo}, got {v!r}")
        if augment is not None and not callable(augment):
            raise TypeError(f"BatchLoader: augment must be callable(x, rng), got {augment!r}")
        self.x, self.y = x, np.asarray(y)
        self.batch_size = int(batch_size)
        self.shuffle, self.augment, self.seed = bool(shuffle), augment, int(seed)
        self.drop_last, self.prefetch = bool(drop_last), int(prefetch)
        self.epoch = 0  # next epoch `iter(loader)` runs

    def __len__(self) -> int:
        n, b = len(self.y), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        """Iterate epoch ``self.epoch`` and advance it (prefer `iter_epoch` when resuming)."""
        epoch = self.epoch
        self.epoch += 1
        return self.iter_epoch(epoch)

    def _batches(self, epoch: int):
        """The batch computation itself, in order; all randomness from one generator."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        n = len(self.y)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            xb = self.x[idx]
            if self.augment is not None:
                xb = self.augment(xb, rng)
            yield xb, self.y[idx]

    def iter_epoch(self, epoch: int):
        """Yield the ``(xb, yb)`` batches of `epoch` (an int >= 0)."""
        if int(epoch) < 0:
            raise ValueError(f"BatchLoader.iter_epoch: epoch must be >= 0, got {epoch}")
        if self.prefetch == 0:
            yield from self._batches(epoch)
            return
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def work():
            try:
                for batch in self._batches(epoch):
                    if not put(batch):
                        return
                put(_DONE)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
                put(_Failure(exc))

        worker = threading.Thread(target=work, name=f"BatchLoader-epoch{epoch}", daemon=True)
        worker.start()
        try:
            while True:
                item = q.get()
                if item is _DONE:
                    return
                if isinstance(item, _Failure):
                    raise item.exc
                yield item
        finally:
            # normal end, exception, or the consumer closing the generator early
            stop.set()
            while worker.is_alive():
                try:
                    q.get_nowait()
                except queue.Empty:
                    worker.join(timeout=0.05)

    def __repr__(self) -> str:
        return (f"BatchLoader(n={len(self.y)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, augment={self.augment!r}, seed={self.seed}, "
                f"drop_last={self.drop_last}, prefetch={self.prefetch})")
