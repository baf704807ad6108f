"""Training: recipes run on accelerate, with atomic resumable checkpoints.

`adaptkit train R.yaml` and `adaptkit.train.run(Recipe.load("R.yaml"))` are the same thing.
"""

from adaptkit.train.loop import Summary, run

__all__ = ["Summary", "run"]
