"""`adaptkit eval`: decode a test set with a trained adapter (or a checkpoint) and write a report.

The model is a recipe (its trained adapter in output_dir), an adapter folder (it names its base
and task), or a merged checkpoint folder. Each `--data` manifest is one set (named after its
folder, e.g. test_id / test_ood) in the breakdowns. With `--hypotheses`, an earlier
decoded.jsonl is scored again without decoding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from adaptkit.data.manifest import Sample, read_manifest
from adaptkit.errors import AdaptkitError
from adaptkit.eval.degeneration import tokenizer_control_tokens
from adaptkit.freeze import load_adapter, read_adapter_config
from adaptkit.models import Loaded, load
from adaptkit.recipe import ModelSection, Recipe, from_dict
from adaptkit.tasks import DEFAULT_TASK, TASKS, task as task_of


@dataclass
class TaskModel:
    """A model ready to decode, and the task it was trained for (with that task's language, prompt
    and tokens); `load_task_model` builds one from a recipe, an adapter or a checkpoint."""

    loaded: Loaded
    task: str
    language: str | None
    prompt: str
    tokens: set[str]
    name: str


def load_task_model(path: str | Path, task: str | None = None, adapter: bool = True) -> TaskModel:
    """Build the model that `path` names: a recipe, an adapter folder or a merged checkpoint.

    With `adapter=False` a recipe gives its base model as it is (the reference row of a comparison)."""
    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        recipe = Recipe.load(path)
        if not adapter:
            tokens = set(recipe.new_tokens.tokens) if recipe.new_tokens else set()  # in the references, not in the base
            return TaskModel(load(recipe.model), task or recipe.task, recipe.language, recipe.prompt, tokens, f"{path} (base, no adapter)")
        adapter = (recipe.output_dir or Path("runs") / "adaptkit") / "adapter"
        if not adapter.is_dir():
            raise AdaptkitError(f"{path}: no trained adapter in {adapter}; run adaptkit train {path} first")
        return _from_adapter(adapter, task)
    if (path / "adaptkit_adapter.json").is_file():
        return _from_adapter(path, task)
    if (path / "config.json").is_file():  # a merged checkpoint: its new tokens are in its tokenizer
        loaded = load(ModelSection(name=str(path)))
        return TaskModel(loaded, task or DEFAULT_TASK, None, "", set(loaded.tokenizer.get_added_vocab()), str(path))
    raise AdaptkitError(f"{path}: not a recipe, an adaptkit adapter or a checkpoint folder")


def _from_adapter(folder: Path, task: str | None) -> TaskModel:
    config = read_adapter_config(folder)
    if "model" not in config:
        raise AdaptkitError(f"{folder}: the adapter does not name its base model (written by an older adaptkit?)")
    section = from_dict(ModelSection, config["model"], f"{folder}/adaptkit_adapter.json: model")
    loaded = load(section)
    model, _ = load_adapter(loaded.model, folder, tokenizer=loaded.tokenizer)
    loaded.model = model
    tokens = set(config.get("token_rows", {})) | set(config.get("added_tokens", {}))
    return TaskModel(loaded, task or config.get("task", DEFAULT_TASK), config.get("language"), config.get("prompt", ""),
                  tokens, str(folder))


def decode_sets(task_model: TaskModel, manifests: list[str], batch_size: int = 8, limit: int | None = None,
                progress: bool = True, force_language: bool = True, on_bad_sample: str = "error") -> list[dict]:
    """Decode every manifest as the model's task does; one dict per sample as its scoring takes them,
    each naming the task (so that `--hypotheses` scores it again without guessing).

    With `force_language`, a sample whose language is known (its own, else the adapter's) gets the
    task's answer prefix (`language X<asr_text>`) in its prompt, as `Qwen3ASRModel.transcribe(language=X)`
    does; without it the model writes the prefix itself, as `transcribe()` with no language."""
    t = task_of(task_model.task)
    rows = []
    for manifest in manifests:
        samples, _ = read_manifest(manifest, task_model.tokens | set(t.allowed_tokens), on_bad_sample, t.require, t.check, audio=t.audio)
        samples = samples[:limit] if limit else samples
        set_name = Path(manifest).parent.name
        out = t.decode(task_model, samples, batch_size=batch_size, progress=progress, force_language=force_language)
        for s, fields in zip(samples, out):
            sid = f"{set_name}/{s.id}" if len(manifests) > 1 else s.id  # ids repeat across generated sets
            rows.append({"task": t.name, "id": sid, "set": set_name, "language": s.language or task_model.language or "", **fields})
    return rows


def generate(task_model: TaskModel, samples: list[Sample], answers: list[str], prefixes: list[str], score_tokens: list[str],
             batch_size: int = 8, progress: bool = True) -> list:
    """Generate an output per sample with the task model (`eval.decode.decode`); `score_tokens` get
    their probabilities at the answer's first token."""
    from adaptkit.eval.decode import decode

    loaded = task_model.loaded
    return decode(loaded.model, loaded.architecture, loaded.tokenizer, task_model.loaded.feature_extractor, samples, answers,
                  task_model.prompt, batch_size=batch_size, score_tokens=score_tokens, progress=progress, prefixes=prefixes)


def end_probabilities(task_model: TaskModel, conversations: list[list[dict]]) -> list[float]:
    """P(<|im_end|>) after each conversation with its last message left open (the turn-detector seed)."""
    from adaptkit.end_of_turn import EndOfTurnScorer

    scorer = EndOfTurnScorer(task_model.loaded.architecture.text_model(task_model.loaded.model), task_model.loaded.tokenizer)
    return [scorer.start(messages) for messages in conversations]


def decode_task_model(task_model: TaskModel, manifests: list[str], batch_size: int = 8, limit: int | None = None,
                  progress: bool = True, force_language: bool = True, on_bad_sample: str = "error") -> tuple[list[dict], set[str]]:
    """`decode_sets`, each row marked with the tokenizer's control tokens it contains (kept in
    decoded.jsonl, so that scoring it again finds the same leaks); also returns those tokens.
    `adaptkit eval` and scoring during training both decode through here."""
    rows = decode_sets(task_model, manifests, batch_size, limit, progress, force_language, on_bad_sample)
    known = tokenizer_control_tokens(task_model.loaded.tokenizer)
    for row in rows:
        text = str(row.get("raw") or row.get("hypothesis") or "")
        row["control_tokens"] = sorted(tok for tok in known if tok in text)
    return rows, known


def score_rows(rows: list[dict], task: str, source: str, known_tokens: Iterable[str] = ()):
    """Score decoded rows with the task's scoring function; `known_tokens` are the tokenizer's
    special and added tokens (leaks when the task does not allow them)."""
    if not rows:
        raise AdaptkitError(f"{source}: no sample to score")
    return task_of(task).score(rows, source, known_tokens)


def read_hypotheses(path: str | Path) -> list[dict]:
    """Rows of an earlier decoded.jsonl; an empty or broken file is an error naming the line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise AdaptkitError(f"{path}: cannot read ({err.strerror})")
    rows = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise AdaptkitError(f"{path}:{number}: not valid JSON ({err.msg})")
    if not rows:
        raise AdaptkitError(f"{path}: empty hypothesis file")
    return rows


def hypotheses_task(rows: list[dict], path: str | Path) -> str:
    """The task the rows of a decoded.jsonl name; none (an older adaptkit), or several, is an error asking for --task."""
    names = {row.get("task") for row in rows}
    supported = ", ".join(sorted(TASKS))
    if None in names:
        raise AdaptkitError(f"{path}: task: the rows do not name their task (written by an older adaptkit?); "
                            f"pass --task ({supported})")
    if len(names) > 1:
        raise AdaptkitError(f"{path}: task: the rows name several tasks ({', '.join(sorted(map(str, names)))}); "
                            f"score one task per file, or pass --task ({supported})")
    try:
        return task_of(names.pop()).name
    except AdaptkitError as err:
        raise AdaptkitError(f"{path}: task: {err}") from None


def evaluate(model_path: str | Path | None, data: list[str], out: str | Path, task: str | None = None,
             hypotheses: str | Path | None = None, batch_size: int = 8, limit: int | None = None, adapter: bool = True,
             device: str | None = None, force_language: bool = True):
    """Decode (or read) and score; write report.json, report.md, plots and decoded.jsonl into `out`.

    `model_path` is a recipe, an adapter folder or a merged checkpoint (the command's TARGET).
    `device` is where the model decodes (default: `cuda` when there is a GPU, else `cpu`); the model
    keeps its dtype and the inputs are cast to it."""
    known: set[str] = set()  # the tokenizer's control tokens; a decoded.jsonl alone has none
    if hypotheses:
        rows = read_hypotheses(hypotheses)
        name, task = str(hypotheses), task or hypotheses_task(rows, hypotheses)
    else:
        if not data:
            raise AdaptkitError("eval: give at least one --data manifest (or --hypotheses)")
        from adaptkit.devices import place, resolve_device

        where = resolve_device(device)  # a device this machine lacks fails before anything loads
        t = load_task_model(model_path, task, adapter)
        place(t.loaded.model, where)
        rows, known = decode_task_model(t, data, batch_size, limit, force_language=force_language)
        name, task = t.name, t.task
    scores = score_rows(rows, task, str(hypotheses or ", ".join(data)), known)
    decoded = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    scores.report(meta={"model": name, "task": task, "samples": len(rows)}).write(out, {"decoded.jsonl": decoded})
    return scores
