"""Each process's share of every global batch, so `train.batch_size` is the batch of one step
whatever the process count.

adaptkit shards its batches itself instead of through `accelerator.prepare(dataloader)`:
accelerate's `BatchSamplerShard` with `split_batches=True` yields a batch only when it is full,
so a short batch in the middle of an epoch is dropped and the last one is padded with repeated
samples (`BatchSamplerShard._iter_with_split` in
https://github.com/huggingface/accelerate/blob/v1.12.0/src/accelerate/data_loader.py), and
`Accelerator(split_batches=True)` is accepted and never read (the keyword is a `_split_batches`
sentinel in src/accelerate/accelerator.py; the flag lives in `DataLoaderConfiguration`,
https://huggingface.co/docs/accelerate/package_reference/utilities#accelerate.DataLoaderConfiguration),
which is how adaptkit's earlier runs gave every process whole batches.
Here every global batch is the one-process batch, cut into contiguous shares whose sizes differ by
at most one; a process left without a sample (a last batch shorter than the process count) gets a
padding entry, `~index`, a repeated sample that carries no loss.
"""

from __future__ import annotations

from torch.utils.data import Sampler


def share(batch: list[int], rank: int, world: int) -> list[int]:
    """Process `rank`'s contiguous part of `batch` (of `world` parts); `[~batch[0]]` when empty."""
    base, extra = divmod(len(batch), world)
    start = rank * base + min(rank, extra)
    part = batch[start:start + base + (1 if rank < extra else 0)]
    return part or [~batch[0]]


class ProcessShard(Sampler[list[int]]):
    """This process's share of each batch of `batches` (a batch sampler every process iterates
    in the same order). `skip` global batches are passed over without being loaded (a resume)."""

    def __init__(self, batches: Sampler[list[int]], rank: int = 0, world: int = 1):
        self.batches, self.rank, self.world = batches, rank, world
        self.skip = 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        skip = self.skip
        for k, batch in enumerate(self.batches):
            if k >= skip:
                yield share(batch, self.rank, self.world)
