"""The per-component table of what trains, for people (rich) and machines (`to_dict`)."""

from __future__ import annotations

import io

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from adaptkit.freeze.components import ComponentMap

GROUPS = ("encoder", "projector", "llm", "embeddings", "lm_head", "lora")


@dataclass
class FreezeReport:
    """Parameter counts per group (components, `lora`, and `other` when present) and trained rows."""

    architecture: str
    component_source: str
    groups: dict[str, dict[str, int]]
    token_rows: dict[str, int] = field(default_factory=dict)
    """Token -> row id of every trained token row."""
    tied: bool = False
    """Whether the embeddings and lm_head share one weight (decided from the weights)."""
    lora_modules: list[str] = field(default_factory=list)
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Component -> {"paths": module paths, "source": architecture map, user map or structural fallback}."""

    @property
    def total(self) -> int:
        """All parameters, each counted once (adapter parameters included)."""
        return sum(g["total"] for g in self.groups.values())

    @property
    def trainable_total(self) -> int:
        """All trainable parameters."""
        return sum(g["trainable"] for g in self.groups.values())

    def to_dict(self) -> dict[str, Any]:
        """The machine form: `groups` -> {total, trainable}, plus `trainable_total` and `total`."""
        return {
            "architecture": self.architecture,
            "component_source": self.component_source,
            "groups": {k: dict(v) for k, v in self.groups.items()},
            "trainable_total": self.trainable_total,
            "total": self.total,
            "token_rows": dict(self.token_rows),
            "tied_embeddings": self.tied,
            "lora_modules": len(self.lora_modules),
            "components": {k: {"paths": list(v["paths"]), "source": v["source"]} for k, v in self.components.items()},
        }

    def table(self):
        """A rich Table with one row per component."""
        from rich.table import Table

        table = Table(title=f"{self.architecture}: what trains ({self.component_source})")
        for col, justify in (("component", "left"), ("total", "right"), ("trainable", "right"), ("%", "right"), ("notes", "left")):
            table.add_column(col, justify=justify)
        for name, g in self.groups.items():
            pct = 100.0 * g["trainable"] / g["total"] if g["total"] else 0.0
            table.add_row(name, f"{g['total']:,}", f"{g['trainable']:,}", f"{pct:.2f}", self._note(name))
        pct = 100.0 * self.trainable_total / self.total if self.total else 0.0
        table.add_row("all", f"{self.total:,}", f"{self.trainable_total:,}", f"{pct:.3f}", "", style="bold")
        return table

    def where_table(self):
        """A rich Table: each component's resolved module paths and where they came from."""
        from rich.table import Table

        table = Table(title="where the components are")
        for col in ("component", "modules", "source"):
            table.add_column(col, justify="left", overflow="fold")
        for name, c in self.components.items():
            table.add_row(name, ", ".join(c["paths"]) or "(none)", c["source"])
        return table

    def _note(self, name: str) -> str:
        if name == "embeddings" and self.token_rows:
            return "rows: " + ", ".join(f"{t} ({i})" for t, i in self.token_rows.items())
        if name == "lm_head" and self.tied:
            return "tied to embeddings"
        if name == "lm_head" and self.token_rows and self.groups[name]["trainable"]:
            return f"{len(self.token_rows)} rows"
        if name == "lora" and self.lora_modules:
            return f"{len(self.lora_modules)} modules"
        return ""

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=120, record=True, file=io.StringIO())
        console.print(self.table())
        if self.components:
            console.print(self.where_table())
        return console.export_text()


def components(cmap: ComponentMap) -> dict[str, dict[str, Any]]:
    """The resolved paths of each component and where they came from, for the report."""
    out = {c: {"paths": cmap.paths(c), "source": cmap.sources.get(c, cmap.source)} for c in ("encoder", "projector", "llm", "embeddings", "lm_head")}
    if cmap.towers:
        out["other"] = {"paths": list(cmap.towers), "source": "other modalities' towers, never trained by a component rule"}
    return out


def count(model: nn.Module, cmap: ComponentMap) -> dict[str, dict[str, int]]:
    """Total and trainable parameters per group; every parameter is counted once."""
    groups = {g: {"total": 0, "trainable": 0} for g in GROUPS}
    for name, p in model.named_parameters():
        g = groups.setdefault(cmap.group_of(name), {"total": 0, "trainable": 0})
        g["total"] += p.numel()
        g["trainable"] += p.numel() if p.requires_grad else 0
    return groups
