"""`adaptkit export ADAPTER --to peft|merged|hub-folder`: a trained adapter in the forms users run.

    peft        adapter_config.json + adapter_model.safetensors (+ tokenizer): LoRA adapters, with
                token rows as trainable_token_indices and whole trained modules as modules_to_save;
                loads with PeftModel.from_pretrained. vLLM serves only the LoRA-only ones.
    merged      a full checkpoint (every adapter kind), for transformers, vLLM and qwen_asr.
    hub-folder  the merged checkpoint and a README.md model card from the run's summary and eval report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptkit.atomic import atomic_write_text
from adaptkit.errors import AdaptkitError

FORMATS = ("peft", "merged", "hub-folder")


@dataclass
class Exported:
    """Where an export went, and what the user should know about it."""

    path: Path
    form: str
    """The `--to` form: one of FORMATS."""
    notes: list[str] = field(default_factory=list)


def _adapter_folder(path: Path) -> Path:
    """The adapter folder that `path` names: the folder itself, or a recipe's output_dir/adapter."""
    from adaptkit.freeze.adapters import CONFIG

    if path.suffix in (".yaml", ".yml"):
        from adaptkit.recipe import Recipe

        recipe = Recipe.load(path)
        path = (recipe.output_dir or Path("runs") / "adaptkit") / "adapter"
    if not (path / CONFIG).is_file():
        what = "a merged checkpoint, already exported" if (path / "config.json").is_file() else "not an adaptkit adapter"
        raise AdaptkitError(f"{path}: {what} (no {CONFIG}); export takes an adapter folder or a recipe")
    return path


def _read_json(path: Path | None, what: str) -> dict[str, Any] | None:
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise AdaptkitError(f"{path}:{err.lineno}: {what} is not valid JSON ({err.msg})")


def run_files(adapter: Path, summary: str | Path | None = None, report: str | Path | None = None) -> tuple[Path | None, Path | None]:
    """The run's summary.json and eval report.json: given, else beside or inside the adapter folder."""
    def pick(given, candidates, what):
        if given is not None:
            if not Path(given).is_file():
                raise AdaptkitError(f"--{what}: {given} is not a file")
            return Path(given)
        return next((c for c in candidates if c.is_file()), None)

    run = adapter.parent
    return (pick(summary, [run / "summary.json", adapter / "summary.json"], "summary"),
            pick(report, [adapter / "eval" / "report.json", run / "eval" / "report.json"], "report"))


def _base_name(config: dict[str, Any], peft_root: str) -> str:
    model = config.get("model") or {}
    if model.get("tiny"):
        return ""
    if peft_root == "llm" and model.get("llm"):
        return model["llm"]
    base = config.get("base") or ""
    return model.get("name") or ("" if base.startswith("tiny:") else base)


def _to_peft(task_model, config: dict[str, Any], out: Path) -> list[str]:
    from adaptkit.export.peft_folder import peft_base, save_peft
    from adaptkit.models import load
    from adaptkit.recipe import ModelSection
    from adaptkit.validation import from_dict

    model, arch = task_model.loaded.model, task_model.loaded.arch
    fresh = load(from_dict(ModelSection, config["model"], "adaptkit_adapter.json: model"))
    return save_peft(model, arch, fresh.model, fresh.tokenizer, out, _base_name(config, peft_base(arch, model).path))


def export(adapter: str | Path, out: str | Path, to: str, summary: str | Path | None = None,
           report: str | Path | None = None) -> Exported:
    """Export the adapter folder (or recipe) `adapter` to `out` in the form `to` (see FORMATS)."""
    from adaptkit.eval.run import load_task_model
    from adaptkit.freeze import read_adapter_config, save_merged

    if to not in FORMATS:
        raise AdaptkitError(f"export --to: {to!r} is not a format; choose one of {', '.join(FORMATS)}")
    folder = _adapter_folder(Path(adapter))
    config = read_adapter_config(folder)
    if "model" not in config:
        raise AdaptkitError(f"{folder}: the adapter does not name its base model (written by an older adaptkit?)")
    if to == "peft" and not (config.get("spec") or {}).get("lora"):  # refused before the model is built
        from adaptkit.export.peft_folder import no_lora, spec_kinds

        raise no_lora(spec_kinds(config.get("spec") or {}))
    files = run_files(folder, summary, report) if to == "hub-folder" else (None, None)
    task_model = load_task_model(folder)
    out = Path(out)
    if to == "peft":
        return Exported(out, to, _to_peft(task_model, config, out))
    loaded = task_model.loaded
    save_merged(loaded.model, out, *loaded.save_pretrained_objects(), carry=loaded.carried_files())
    notes = ["loads with the class's own from_pretrained; the new tokens are not special, so skip_special_tokens=True keeps them"]
    if to == "hub-folder":
        from adaptkit.export.card import model_card

        card = model_card(config, _read_json(files[0], "summary"), _read_json(files[1], "eval report"))
        atomic_write_text(out / "README.md", card)
        notes.append(f"model card from {files[0] or 'no summary.json'} and {files[1] or 'no eval report.json'}")
    return Exported(out, to, notes)
