"""The model card (README.md) of a hub folder, written from what the run itself recorded.

Every table comes from a file of the run: the adapter's `adaptkit_adapter.json` (base, spec, added
tokens, task), `summary.json` (steps, losses, parameter counts per component) and the eval
`report.json` (headline table and degeneration rates). Nothing is typed in by hand, so the card
says what the run measured and no more.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from adaptkit.eval.report import markdown_table
from adaptkit.tasks import DEFAULT_TASK

TRAINING_KEYS = ("steps", "seconds", "samples_per_second", "final_loss", "dev_loss", "trainable_parameters", "peak_memory_mb")
"""The summary.json fields in the card's training table, in this order."""


def _base_name(config: Mapping[str, Any]) -> str:
    model = config.get("model") or {}
    return model.get("name") or model.get("llm") or config.get("base") or "unknown"


def _front_matter(config: Mapping[str, Any]) -> str:
    base = _base_name(config)
    lines = ["---", "library_name: transformers", "tags:", "- adaptkit", f"- {config.get('task', DEFAULT_TASK)}"]
    if "/" in base and not base.startswith(("/", ".", "tiny:")):
        lines.append(f"base_model: {base}")
    return "\n".join(lines + ["---"])


def _what_trained(summary: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    groups = ((summary or {}).get("report") or {}).get("groups") or {}
    return [{"component": k, "trainable": v.get("trainable"), "total": v.get("total")} for k, v in groups.items()]


def _eval_sections(report: Mapping[str, Any]) -> list[str]:
    parts = [f"## Evaluation: {report.get('title', 'report')}", ""]
    meta = report.get("meta") or {}
    parts += [f"- {k}: {v}" for k, v in meta.items()] + [""]
    if report.get("headline"):
        parts += ["### Headline", "", markdown_table(report["headline"]), ""]
    for section in report.get("sections") or []:
        if "degenera" in section.get("name", "").lower() and section.get("rows"):
            parts += [f"### {section['name']}", "", markdown_table(section["rows"]), ""]
    return parts


def model_card(config: Mapping[str, Any], summary: Mapping[str, Any] | None, report: Mapping[str, Any] | None) -> str:
    """README.md text for a merged checkpoint: base, what trained, tokens, recipe, eval tables."""
    base = _base_name(config)
    parts = [_front_matter(config), "", f"# {config.get('task', DEFAULT_TASK)} adapter on {base}, merged", "",
             f"Fine-tuned with adaptkit from `{base}` ({config.get('architecture', '?')}); the adapter is merged into the "
             "weights, so the folder loads with the class's own `from_pretrained`. New tokens are added tokens that are not "
             "special: decoding with `skip_special_tokens=True` (vLLM's default) keeps them.", ""]
    if config.get("added_tokens"):
        parts += ["## Added tokens", "", markdown_table([{"token": t, "id": i} for t, i in config["added_tokens"].items()]), ""]
    parts += ["## Recipe", "", f"- task: {config.get('task')}", f"- language: {config.get('language')}",
              f"- prompt: {config.get('prompt')!r}", "- freezing spec:", "", "```json",
              json.dumps(config.get("spec"), indent=2, ensure_ascii=False), "```", ""]
    trained = _what_trained(summary)
    if trained:
        parts += ["## What trained", "", markdown_table(trained), ""]
    if summary:
        row = {k: summary.get(k) for k in TRAINING_KEYS if k in summary}
        parts += ["## Training", "", markdown_table([row]), ""]
    if report:
        parts += _eval_sections(report)
    else:
        parts += ["## Evaluation", "", "No eval report was found for this run (adaptkit eval writes one).", ""]
    return "\n".join(parts).rstrip() + "\n"
