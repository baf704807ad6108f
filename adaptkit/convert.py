"""`adaptkit convert`: a Qwen3-ASR checkpoint folder from qwen_asr's layout to transformers 5's
native one, or back, at the file level (so it runs on either software stack).

Weights are renamed with safetensors (the tensors themselves are written back untouched: same bytes,
same dtypes; a tied lm_head stays tied, absent from the file), config.json is rewritten as JSON
(see `adaptkit.models.qwen3_asr_layout`), the tokenizer files are copied, the processor's files are
written as JSON and text. Nothing is unpickled: a folder with only `.bin` weights is refused.

The native folder also holds `qwen_asr_layout.json`, the original's config, feature extractor, chat
template and tokenizer config verbatim, so the way back restores them exactly (the native layout has
no place for qwen_asr's mrope fields, its encoder's position-table size and chunking, its languages);
transformers ignores the file. The result is written to a temporary folder beside DST and moved into
place in one step; an existing non-empty DST is refused unless `force`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from adaptkit.atomic import atomic_dir
from adaptkit.errors import AdaptkitError
from adaptkit.models import qwen3_asr_layout as layout

RECORD = "qwen_asr_layout.json"
"""The native folder's record of the qwen_asr files it was converted from."""
INDEX = "model.safetensors.index.json"
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "added_tokens.json", "special_tokens_map.json")
"""Copied as they are (tokenizer_config.json is rewritten where a layout needs more in it)."""
QWEN_ASR_FILES = ("config.json", "preprocessor_config.json", "chat_template.json", "chat_template.jinja",
                  "tokenizer_config.json")
"""qwen_asr's files the record keeps verbatim."""
GENERATION = {"eos_token_id": [151643, 151645], "pad_token_id": 151645, "do_sample": False, "max_new_tokens": 512}
"""A native generation config where the source has none (the reference conversion's values)."""


@dataclass
class Converted:
    """What one conversion did."""

    src: Path
    dst: Path
    source_layout: str
    target_layout: str
    tensors: int
    tied: bool

    def line(self) -> str:
        """One line saying what was done."""
        tie = ", lm_head tied to the embeddings" if self.tied else ""
        return (f"converted {self.src} ({self.source_layout} layout) to {self.dst} ({self.target_layout} layout): "
                f"{self.tensors} tensors renamed, bytes unchanged{tie}")


def read_json(path: Path) -> dict:
    """A JSON object from `path`, or a one-line error naming the file."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise AdaptkitError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(value, dict):
        raise AdaptkitError(f"{path}: not a JSON object")
    return value


def write_json(path: Path, value: dict) -> None:
    """`value` as transformers writes its JSON files (sorted keys, indent 2, a final newline)."""
    path.write_text(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def detect_layout(src: str | Path) -> str:
    """`native` or `qwen_asr`: the layout of the Qwen3-ASR checkpoint folder `src` (refused otherwise)."""
    src = Path(src)
    if not (src / "config.json").is_file():
        raise AdaptkitError(f"{src}: config.json: not found; not a checkpoint folder")
    return layout.detect(read_json(src / "config.json"), str(src / "config.json"))


def convert(src: str | Path, dst: str | Path, to: str | None = None, force: bool = False) -> Converted:
    """Convert the Qwen3-ASR folder `src` to layout `to` (`native` or `qwen_asr`; default: the other
    one than `src`'s) in `dst`, atomically."""
    src, dst = Path(src), Path(dst)
    source = detect_layout(src)
    target = to or (layout.NATIVE if source == layout.QWEN_ASR else layout.QWEN_ASR)
    if target not in layout.LAYOUTS:
        raise AdaptkitError(f"--to: {target!r}; use one of {', '.join(layout.LAYOUTS)}")
    if target == source:
        raise AdaptkitError(f"{src / 'config.json'}: already in the {source} layout; nothing to convert")
    _check_dst(src, dst, force)
    with atomic_dir(dst) as tmp:
        tensors, tied = _convert_weights(src, tmp, source, target)
        (_write_native if target == layout.NATIVE else _write_qwen_asr)(src, tmp, tied)
        _copy_tokenizer(src, tmp)
    return Converted(src, dst, source, target, tensors, tied)


def _check_dst(src: Path, dst: Path, force: bool) -> None:
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise AdaptkitError(f"{dst}: inside the source folder {src}; choose a folder elsewhere")
    if dst.resolve() in src.resolve().parents:
        raise AdaptkitError(f"{dst}: holds the source folder {src}; replacing it would delete the source")
    if dst.exists() and not dst.is_dir():
        raise AdaptkitError(f"{dst}: exists and is not a folder")
    if dst.is_dir() and any(dst.iterdir()) and not force:
        raise AdaptkitError(f"{dst}: exists and is not empty; --force replaces it")


def _weight_files(src: Path) -> list[str]:
    """The safetensors files holding the weights: one, or the shards an index names."""
    if (src / INDEX).is_file():
        shards = sorted(set(read_json(src / INDEX).get("weight_map", {}).values()))
        missing = [s for s in shards if not (src / s).is_file()]
        if not shards or missing:
            raise AdaptkitError(f"{src / INDEX}: weight_map: {'names no shard' if not shards else 'missing ' + missing[0]}")
        return shards
    if (src / "model.safetensors").is_file():
        return ["model.safetensors"]
    if any(src.glob("*.bin")):
        raise AdaptkitError(f"{src}: model.safetensors: not found, only pickled .bin weights, which adaptkit does not "
                            "load; save the model with safe_serialization=True first")
    raise AdaptkitError(f"{src}: model.safetensors: not found")


def _convert_weights(src: Path, out: Path, source: str, target: str) -> tuple[int, bool]:
    """Write every weight file under its target names; returns (tensor count, whether lm_head is tied)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    rules = layout.TO_NATIVE if target == layout.NATIVE else layout.TO_QWEN_ASR
    names: dict[str, str] = {}
    for file in _weight_files(src):
        with safe_open(src / file, framework="pt") as f:
            metadata = f.metadata()
            tensors = {layout.rename(k, rules, str(src / file)): f.get_tensor(k) for k in f.keys()}
        save_file(tensors, out / file, metadata=metadata)
        names.update(dict.fromkeys(tensors, file))
    if (src / INDEX).is_file():
        index = read_json(src / INDEX)
        write_json(out / INDEX, {**index, "weight_map": dict(sorted(names.items()))})
    _check_weights(names, target, src)
    return len(names), layout.LM_HEAD[target] not in names


def _check_weights(names: dict[str, str], target: str, src: Path) -> None:
    """The renamed weights hold the projector and the embeddings (a whole Qwen3-ASR, not a part)."""
    expected = (["model.multi_modal_projector.linear_1.weight", "model.language_model.embed_tokens.weight"]
                if target == layout.NATIVE else ["thinker.audio_tower.proj1.weight", "thinker.model.embed_tokens.weight"])
    for key in expected:
        if key not in names:
            raise AdaptkitError(f"{src}: weights: no tensor maps to {key}; not a whole Qwen3-ASR checkpoint")


def _copy_tokenizer(src: Path, out: Path) -> None:
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, out / name)
    if not (src / "tokenizer_config.json").is_file():
        raise AdaptkitError(f"{src}: tokenizer_config.json: not found; the folder has no tokenizer")
    if not (out / "tokenizer_config.json").is_file():
        shutil.copy2(src / "tokenizer_config.json", out / "tokenizer_config.json")
    if not (out / "generation_config.json").is_file() and (src / "generation_config.json").is_file():
        shutil.copy2(src / "generation_config.json", out / "generation_config.json")


def _write_native(src: Path, out: Path, tied: bool) -> None:
    """config.json, the processor's files, the tokenizer config with its audio tokens, the record."""
    config = read_json(src / "config.json")
    native = layout.config_to_native(config, tied, str(src / "config.json"))
    write_json(out / "config.json", native)
    whisper = read_json(src / "preprocessor_config.json") if (src / "preprocessor_config.json").is_file() else {}
    processor = {"feature_extractor": layout.native_feature_extractor(whisper, native["audio_config"]["n_window"]),
                 "processor_class": "Qwen3ASRProcessor", "timestamp_segment_time": 80}
    write_json(out / "processor_config.json", processor)
    (out / "chat_template.jinja").write_text(layout.NATIVE_CHAT_TEMPLATE, encoding="utf-8")
    tokenizer = src / "tokenizer_config.json"
    if tokenizer.is_file():
        write_json(out / "tokenizer_config.json", layout.native_tokenizer_config(read_json(tokenizer), str(tokenizer)))
    if not (src / "generation_config.json").is_file():
        write_json(out / "generation_config.json", GENERATION)
    record = {name: (src / name).read_text(encoding="utf-8") for name in QWEN_ASR_FILES if (src / name).is_file()}
    write_json(out / RECORD, {"about": "the qwen_asr-layout files this folder was converted from (adaptkit convert); "
                                       "`adaptkit convert --to qwen_asr` restores them", "files": record})


def _write_qwen_asr(src: Path, out: Path, tied: bool) -> None:
    """config.json (the record's fields restored), the WhisperFeatureExtractor config, qwen_asr's
    chat template and tokenizer config: verbatim from the record where the folder has one."""
    record = read_json(src / RECORD).get("files", {}) if (src / RECORD).is_file() else {}
    original = json.loads(record["config.json"]) if "config.json" in record else None
    native = read_json(src / "config.json")
    config = layout.config_to_qwen_asr(native, tied, original, _audio_start_id(src), str(src / "config.json"))
    write_json(out / "config.json", config)
    for name in QWEN_ASR_FILES[1:]:
        if name in record:
            (out / name).write_text(record[name], encoding="utf-8")
    if "tokenizer_config.json" in record:
        _add_new_tokens(out / "tokenizer_config.json", _native_added_tokens(src))
    if "tokenizer_config.json" not in record and (src / "tokenizer_config.json").is_file():
        write_json(out / "tokenizer_config.json", layout.qwen_asr_tokenizer_config(read_json(src / "tokenizer_config.json")))
    if "preprocessor_config.json" not in record:
        write_json(out / "preprocessor_config.json", layout.whisper_feature_extractor(_native_feature_extractor(src)))
    if not any(name in record for name in ("chat_template.json", "chat_template.jinja")):
        (out / "chat_template.jinja").write_text(layout.QWEN_ASR_CHAT_TEMPLATE, encoding="utf-8")


TOKEN_FLAGS = ("content", "lstrip", "normalized", "rstrip", "single_word", "special")
"""The fields of an `added_tokens_decoder` entry (tokenizer.json's `added_tokens` add the id)."""


def _native_added_tokens(src: Path) -> dict[str, dict]:
    """The native folder's added tokens, id -> entry: its tokenizer config's `added_tokens_decoder`
    and tokenizer.json's `added_tokens` (where transformers 5 writes them, its config has none)."""
    added: dict[str, dict] = {}
    if (src / "tokenizer.json").is_file():
        for token in read_json(src / "tokenizer.json").get("added_tokens") or []:
            if isinstance(token, dict) and "id" in token:
                added[str(token["id"])] = {k: token[k] for k in TOKEN_FLAGS if k in token}
    if (src / "tokenizer_config.json").is_file():
        added.update(read_json(src / "tokenizer_config.json").get("added_tokens_decoder") or {})
    return added


def _add_new_tokens(restored: Path, native: dict[str, dict]) -> None:
    """The recorded tokenizer config with the native folder's added tokens it lacks (added after the
    conversion, by fine-tuning), their flags as they are; every recorded entry stays. Untouched
    (byte for byte) when nothing was added."""
    config = read_json(restored)
    recorded = config.get("added_tokens_decoder") or {}
    new = {i: t for i, t in native.items() if i not in recorded}
    if not new:
        return
    known = {t.get("content") for t in recorded.values() if isinstance(t, dict)}
    clash = [t.get("content") for t in new.values() if isinstance(t, dict) and t.get("content") in known]
    if clash:
        raise AdaptkitError(f"{restored.name}: added_tokens_decoder: {clash[0]} has another id in the native tokenizer "
                            "than in the recorded original; the record does not belong to this folder")
    config["added_tokens_decoder"] = {**recorded, **dict(sorted(new.items(), key=lambda item: int(item[0])))}
    restored.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _native_feature_extractor(src: Path) -> dict:
    """The native folder's feature extractor settings (processor_config.json, or preprocessor_config.json)."""
    if (src / "processor_config.json").is_file():
        fe = read_json(src / "processor_config.json").get("feature_extractor")
        if isinstance(fe, dict):
            return fe
    if (src / "preprocessor_config.json").is_file():
        return read_json(src / "preprocessor_config.json")
    raise AdaptkitError(f"{src}: processor_config.json: not found (nor preprocessor_config.json); no feature extractor")


def _audio_start_id(src: Path) -> int | None:
    """The id of `<|audio_start|>` in the folder's tokenizer config, if it lists it."""
    if not (src / "tokenizer_config.json").is_file():
        return None
    added = read_json(src / "tokenizer_config.json").get("added_tokens_decoder") or {}
    ids = [int(i) for i, t in added.items() if isinstance(t, dict) and t.get("content") == layout.AUDIO_TOKENS["audio_bos_token"]]
    return ids[0] if ids else None
