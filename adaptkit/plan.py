"""`adaptkit plan`: build the recipe's model, apply its freezing spec, report what trains."""

from __future__ import annotations

from adaptkit.freeze import FreezeReport, apply
from adaptkit.models import load
from adaptkit.recipe import Recipe, blame


def plan(recipe: Recipe) -> FreezeReport:
    """Build the model of `recipe`, apply its spec, and return the report (nothing trains)."""
    with blame(recipe.source):
        loaded = load(recipe.model)
        _, report = apply(loaded.model, recipe.freeze, tokenizer=loaded.tokenizer)
    return report
