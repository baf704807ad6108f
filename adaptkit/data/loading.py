"""Batches from samples, made ahead of the step in DataLoader worker processes.

- `SampleDataset` encodes one sample on demand (audio, features, token ids). An index can come marked
  with the sample's audio placeholder count, `(i, n)`: its encoder output is cached, so its audio is
  not read and no features are computed (only the prompt and answer are tokenised). A random draw
  while encoding (a feature extractor's `dither`) comes from generators seeded by (seed, index), so
  it is the same whichever process encodes the sample, and the process's own RNGs do not move.
- `CachedMarks` wraps a batch sampler in the main process, where the encoder cache is, and marks
  the indices whose encoder output the cache holds when the batch is requested.
- `loader` builds torch's DataLoader around them: the batch sampler stays in the main process; with
  `workers` > 0, forked worker processes make the batches, `PREFETCH` each ahead, kept across epochs.
  Batches come back in the sampler's order whatever the worker count and their random draws depend
  on the sample alone, so the training is the same bit for bit. `close` shuts the workers down.
- `timed` yields a loader's batches, adds the time the main process waited for each to a
  `DataClock`, and turns a user error raised in a worker back into its one line.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import weakref
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from adaptkit.data.batching import IGNORE, Encoded, collate
from adaptkit.data.manifest import Sample
from adaptkit.errors import AdaptkitError

log = logging.getLogger("adaptkit")

Key = Union[int, tuple[int, int]]
"""A dataset index: `i`, `~i` (sharding's padding entry: sample i, no loss) or `(i, n)` (cached, n placeholders)."""
PREFETCH = 2
"""Batches each worker prepares ahead (torch's default): with 2 workers up to 4 batches wait ready."""
SHARED_BYTES = 1 << 20
"""A worker hands tensors from this size on through shared memory (torch's way: a descriptor passed
over a socket per tensor, about a millisecond each); smaller ones (ids, masks, labels) go pickled as
numpy arrays. Measured on 60 tiny cached steps (batches of 2, this 2-core machine under load): the
training loop took 5.1-6.0 s with every tensor shared, 4.3-5.0 s so, 3.8-4.2 s without workers."""


@dataclass(frozen=True)
class Failure:
    """A user error (AdaptkitError) raised in a worker, carried to the main process as its line."""

    message: str


@contextmanager
def seeded(seed: int, index: int) -> Iterator[None]:
    """Inside, torch's CPU generator and numpy's global one are seeded by (seed, index); outside,
    both are as they were (CUDA's generators are never touched)."""
    value = (seed * 1_000_003 + index) % 2**32
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(value)
        np.random.seed(value)
        try:
            yield
        finally:
            np.random.set_state(state)


class SampleDataset(Dataset):
    """Samples encoded on demand by `encode_one(sample, n_audio)` (n_audio: None, or the placeholder
    count of a cached sample), random draws seeded by (`seed`, index); each item is (index, Encoded, real)."""

    def __init__(self, samples: list[Sample], encode_one: Callable[[Sample, int | None], Encoded], seed: int = 0):
        self.samples, self.encode_one, self.seed = samples, encode_one, seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: Key) -> tuple[int, Encoded | Failure, bool]:
        i, n_audio = key if isinstance(key, tuple) else (key, None)
        real = i >= 0
        i = i if real else ~i
        try:
            with seeded(self.seed, i):
                return i, self.encode_one(self.samples[i], n_audio), real
        except AdaptkitError as err:
            if get_worker_info() is None:  # the main process: raised as it is
                raise
            return i, Failure(str(err)), real  # torch would re-raise it with the worker's traceback in the text


def collate_fn(pad_id: int) -> Callable[[list], dict]:
    """The DataLoader's collate: `batching.collate` plus `index` and `real` (False: a padding entry,
    every label IGNORE); a batch holding a worker's Failure is `{"error": line}`."""

    def fn(items: list[tuple[int, Encoded | Failure, bool]]) -> dict:
        failed = [e for _, e, _ in items if isinstance(e, Failure)]
        if failed:
            return {"error": failed[0].message}
        batch = collate([e for _, e, _ in items], pad_id)
        batch["index"] = torch.tensor([i for i, _, _ in items])
        batch["real"] = torch.tensor([r for _, _, r in items])
        batch["labels"][~batch["real"]] = IGNORE  # a padding entry: no supervised position, no loss
        if "ctc_labels" in batch:
            batch["ctc_labels"][~batch["real"]] = IGNORE
        if get_worker_info() is not None:
            batch = {k: v.numpy() if isinstance(v, torch.Tensor) and v.nbytes < SHARED_BYTES else v for k, v in batch.items()}
        return batch
    return fn


class CachedMarks(Sampler[list[Key]]):
    """The batches of `batches` with each index whose encoder output is cached marked `(i, n)`
    (`known(i)`: its placeholder count, or None). Iterated in the main process as batches are
    requested: with workers up to `PREFETCH x workers` batches ahead of the step, so a sample met
    again within that distance (weighted sampling) may be read twice. `skip` is the wrapped
    sampler's (global batches a resume passes over)."""

    def __init__(self, batches: Sampler[list[int]], known: Callable[[int], int | None] | None):
        self.batches, self.known = batches, known

    def __len__(self) -> int:
        return len(self.batches)

    @property
    def skip(self) -> int:
        """Batches the next iteration passes over (ProcessShard.skip)."""
        return self.batches.skip

    @skip.setter
    def skip(self, value: int) -> None:
        self.batches.skip = value

    def __iter__(self) -> Iterator[list[Key]]:
        for batch in self.batches:
            yield batch if self.known is None else [self._mark(i) for i in batch]

    def _mark(self, i: int) -> Key:
        n = self.known(i if i >= 0 else ~i)
        return i if n is None else (i, n)


def loader(dataset: SampleDataset, batches: Sampler, pad_id: int, workers: int, seed: int,
           worker_init: Callable[[int], None] | None = None) -> DataLoader:
    """A DataLoader over `batches` (a batch sampler, iterated here); `workers` forked processes make
    the batches (0: this process), each running `worker_init(worker_id)` first. Its generator is its
    own, so iterating it never moves the global torch RNG (a run's dropout is the same whatever
    `workers`)."""
    if workers and "fork" not in multiprocessing.get_all_start_methods():
        log.warning("train.data_workers: this platform cannot fork, so the data is loaded in the main process")
        workers = 0
    options = dict(num_workers=workers, prefetch_factor=PREFETCH, persistent_workers=True, worker_init_fn=worker_init,
                   multiprocessing_context="fork") if workers else {}
    # fork: a worker starts from the tokenizer, feature extractor and model already in memory (the model
    # only for its configuration: a worker never touches CUDA); spawn would pickle them for every worker
    data = DataLoader(dataset, batch_sampler=batches, collate_fn=collate_fn(pad_id),
                      generator=torch.Generator().manual_seed(seed), **options)
    if workers:
        _OPEN.add(data)
    return data


_OPEN: weakref.WeakSet[DataLoader] = weakref.WeakSet()
"""Loaders with workers not yet closed. Their workers ignore SIGTERM (guard.detach_worker), so
multiprocessing's own exit handler, which terminates daemonic children and then joins them, would
wait forever for one left running: `_close_all` closes them first (atexit runs handlers in the
reverse order of registration, and multiprocessing registered its own at import, before this)."""


@atexit.register
def _close_all() -> None:
    for data in list(_OPEN):
        close(data)


def close(data: DataLoader | None) -> None:
    """Shut `data`'s persistent workers down now, and wait for the threads that fed them indices, so
    no worker or thread outlives the run (adaptkit.child forks only a process with one thread)."""
    if data is None:
        return
    _OPEN.discard(data)
    iterator = getattr(data, "_iterator", None)  # torch keeps a persistent workers' iterator there
    if iterator is None:
        return
    iterator._shutdown_workers()
    for queue in getattr(iterator, "_index_queues", []):
        thread = getattr(queue, "_thread", None)  # multiprocessing.Queue's feeder thread, ended by close()
        if thread is not None:
            thread.join(timeout=5)
    data._iterator = None


@dataclass
class DataClock:
    """Seconds the main process waited for batches and spent in optimizer steps."""

    waited: float = 0.0
    stepped: float = 0.0

    def share(self) -> float | None:
        """waited / (waited + stepped): the data path's share of the training loop; None before a step."""
        total = self.waited + self.stepped
        return self.waited / total if total > 0 else None


def timed(batches: Iterable[dict], clock: DataClock | None = None) -> Iterator[dict]:
    """The batches of `batches`, the wait for each (iterator start included) added to `clock.waited`;
    a batch carrying a worker's error raises it as the one line it was."""
    start = time.perf_counter()
    iterator = iter(batches)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        finally:
            if clock is not None:
                clock.waited += time.perf_counter() - start
        if "error" in batch:
            raise AdaptkitError(batch["error"])
        yield {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}
        start = time.perf_counter()
