"""`adaptkit cascade RECIPE`: train the gate, run every turn model as a speculative cascade (and on
every chunk), run the baselines, and write one comparison (Markdown, JSON, trade-off plot).

A cascade recipe:

    turn_models:                      # name -> recipe, adapter folder or merged checkpoint
      3-tag Speech-LLM: ../tiny/turn_tags.yaml      # a recipe is trained first when it has no adapter
      end-of-turn LM (reference words): ../tiny/turn_end.yaml     # a path alone: punctuated reference words
      end-of-turn LM (ASR words):                   # or a mapping: what an end-of-turn LM reads
        {model: ../tiny/turn_end_normalised.yaml, words: asr, asr: ../base/merged}
    data: null                        # synth layout with train/ and test_ood/ (default: the first recipe's data)
    gate: {kind: gru, steps: 300}
    baselines: [vad_timeout, smart_turn]
    smart_turn_audio: own_channel     # the judged speaker's channel of <id>.stereo.wav (synth --stereo), or mono
    output_dir: ../../runs/tiny_cascade

`words`: `oracle` (the reference words as written, punctuated), `oracle_normalised` (the reference
words normalised like LiveKit) or `asr` (the words of the ASR checkpoint `asr` for the judged
speaker's units, the other speaker's reference words, normalised like LiveKit: `adaptkit.turn.words`).
An LM that reads normalised words should be trained on normalised text
(`adaptkit.turn.normalize.write_normalized_turn_end`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from adaptkit.atomic import atomic_write_text
from adaptkit.errors import AdaptkitError
from adaptkit.recipe import Recipe, blame, read_yaml
from adaptkit.turn import cascade
from adaptkit.turn.latency import Timed, one_thread, percentiles
from adaptkit.turn.smart_turn import SMART_TURN_AUDIO
from adaptkit.turn.words import WORDS, words_for
from adaptkit.validation import check_choice, from_dict

if TYPE_CHECKING:
    import torch

log = logging.getLogger("adaptkit")
BASELINES = ("vad_timeout", "smart_turn")


@dataclass
class GateSection:
    """The cheap speech/non-speech gate run on every chunk."""

    kind: str = "gru"
    """`gru` (the seed's ~200K-parameter GRU over 40-dim log-mel, trained here) or `silero` (Silero VAD)."""
    steps: int = 300
    """GRU training steps (on the train split's frame labels)."""
    lr: float = 3e-3
    """GRU learning rate."""
    path: str | None = None
    """A trained GRU gate to load instead of training one (relative to the recipe): a gate.safetensors,
    or its ONNX export (`adaptkit turn export-gate`, fp32 or int8) run on onnxruntime."""
    threshold: float = 0.5
    """P(speech) at or above this is speech."""


@dataclass
class TurnModel:
    """One turn model of a cascade recipe, and for an end-of-turn LM the words it reads."""

    model: str
    """A recipe, adapter folder or merged checkpoint of a turn_tags (audio) or turn_end (text) model."""
    words: str | None = None
    """What an end-of-turn LM reads (`adaptkit.turn.words.WORDS`); None: the reference words as written."""
    asr: str | None = None
    """With `words: asr`: the ASR (a merged Speech-LLM folder, an adapter or a recipe with its adapter)."""


@dataclass
class CascadeRecipe:
    """A validated cascade study."""

    turn_models: dict[str, Any]
    """Name -> a recipe, adapter folder or merged checkpoint (its path), or a `TurnModel` mapping
    {model, words, asr}; `load` makes every entry a `TurnModel`, paths resolved."""
    data: str | None = None
    """Folder in `adaptkit synth` layout (train/ for the gate, `test` for scoring); default: the first recipe's data."""
    test: str = "test_ood"
    """Split scored."""
    gate: GateSection = field(default_factory=GateSection)
    asks: list[float] = field(default_factory=lambda: [0.2])
    """Seconds of non-speech at which the turn model is asked (the seed: once, at 200 ms)."""
    threshold: float = 0.5
    """P(end of turn) at or above this labels the silence Gap (the frame metrics' operating point)."""
    every_chunk: bool = True
    """Also run each turn model on every chunk: the cost the cascade saves, and its accuracy."""
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    """`vad_timeout` (Silero VAD, end of turn after a fixed silence) and `smart_turn` (Smart Turn v3.2 after 200 ms)."""
    smart_turn_audio: str = "own_channel"
    """What Smart Turn hears: `own_channel` (the judged speaker's channel of `<id>.stereo.wav`; a
    conversation without one is an error) or `mono` (the mono mix, the other speaker in it)."""
    timeout: float = 0.5
    """Silence (s) after which the timeout baselines call the end of turn, at the operating point."""
    limit: int | None = None
    """Score at most this many conversations."""
    output_dir: str | None = None
    """Where the report goes (relative to the recipe)."""

    @classmethod
    def load(cls, path: str | Path, overrides: tuple[str, ...] = ()) -> "CascadeRecipe":
        """Read, override and validate a cascade recipe; paths are relative to the file."""
        data = read_yaml(path, overrides)
        base = Path(path).resolve().parent
        with blame(str(path)):
            if not isinstance(data, dict) or "turn_models" not in data:
                raise AdaptkitError("missing section 'turn_models' (name -> recipe, adapter or checkpoint)")
            data = dict(data)
            if data.get("gate") is not None:
                data["gate"] = from_dict(GateSection, data["gate"], "gate")
            recipe = from_dict(cls, {k: v for k, v in data.items() if v is not None}, "cascade")
            recipe.turn_models = {name: _turn_model(name, spec, base) for name, spec in recipe.turn_models.items()}
            recipe.data = str((base / recipe.data).resolve()) if recipe.data else None
            recipe.output_dir = (base / recipe.output_dir).resolve() if recipe.output_dir else Path("runs/cascade").resolve()
            if recipe.gate.path:
                recipe.gate.path = str((base / recipe.gate.path).resolve())
            check_choice(recipe.gate.kind, ("gru", "silero"), "gate.kind", "gate")
            for b in recipe.baselines:
                check_choice(b, BASELINES, "baselines", "baseline")
            check_choice(recipe.smart_turn_audio, SMART_TURN_AUDIO, "smart_turn_audio", "audio")
            if not recipe.turn_models:
                raise AdaptkitError("turn_models: name at least one turn model")
        return recipe


def _turn_model(name: str, spec: Any, base: Path) -> TurnModel:
    """One `turn_models` entry (a path, or a {model, words, asr} mapping) checked, paths resolved against `base`."""
    where = f"turn_models.{name}"
    if isinstance(spec, str):
        spec = {"model": spec}
    if not isinstance(spec, dict):
        raise AdaptkitError(f"{where}: expected a path or a mapping {{model, words, asr}}, got {type(spec).__name__} {spec!r}")
    out = from_dict(TurnModel, spec, where)
    out.model = str((base / out.model).resolve())
    if out.words is not None:
        check_choice(out.words, WORDS, f"{where}.words", "words mode")
    if (out.words == "asr") != (out.asr is not None):
        raise AdaptkitError(f"{where}.asr: give the ASR checkpoint with words: asr" if out.words == "asr"
                            else f"{where}.asr: read only with words: asr (words is {out.words or 'not given'})")
    if out.asr is not None:
        out.asr = str((base / out.asr).resolve())
        if not Path(out.asr).exists():
            raise AdaptkitError(f"{where}.asr: no such file or folder {out.asr}")
    return out


def _verifier(name: str, spec: TurnModel, device: torch.device | str):
    """The end-of-turn verifier of a turn model on `device`, ready to ask; a recipe without a trained
    adapter is trained first."""
    from adaptkit.devices import place
    from adaptkit.eval.run import load_task_model
    from adaptkit.tasks import task
    from adaptkit.train import run

    path = spec.model
    if path.endswith((".yaml", ".yml")):
        recipe = Recipe.load(path)
        if not ((recipe.output_dir or Path("runs/adaptkit")) / "adapter").is_dir():
            log.info("training the turn model %s", path)
            run(recipe)
    task_model = load_task_model(path)
    place(task_model.loaded.model, device)
    with blame(f"turn_models.{name}"):
        words = None if spec.words is None else words_for(spec.words, spec.asr, device)
        verifier = task(task_model.task).verifier(task_model, words)
    if verifier is None:
        raise AdaptkitError(f"turn_models: {path} is a {task_model.task} model, which gives no end-of-turn probability; "
                            "a turn model is trained for turn tags or turn end")
    return verifier


def _data_folder(recipe: CascadeRecipe) -> Path:
    if recipe.data:
        return Path(recipe.data)
    first = next(iter(recipe.turn_models.values())).model
    if first.endswith((".yaml", ".yml")):
        r = Recipe.load(first)
        if r.data and r.data.synth and r.output_dir:
            return r.output_dir / r.data.synth.out
    raise AdaptkitError("data: give the folder of conversations (adaptkit synth layout)")


def _conversations(folder: Path, limit: int | None = None) -> list[tuple[Path, dict]]:
    if not folder.is_dir():
        raise AdaptkitError(f"data: {folder} is not a folder of conversations")
    out = []
    for meta in sorted(folder.glob("*.json")):
        try:
            record = json.loads(meta.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise AdaptkitError(f"{meta}:{err.lineno}: not valid JSON ({err.msg})")
        if not isinstance(record, dict) or "frames" not in record or "silences" not in record:
            raise AdaptkitError(f"{meta}: not an adaptkit synth record (no frames or silences)")
        wav = meta.with_suffix(".wav")
        out.append((wav, {**record, "audio": str(wav)}))  # the audio's absolute path, for verifiers that read files
    if not out:
        raise AdaptkitError(f"data: no conversation records (*.json) in {folder}")
    return out[:limit] if limit else out


def _gate(recipe: CascadeRecipe, train: Path, out: Path):
    from adaptkit.turn import gate as gru

    if recipe.gate.kind == "silero":
        from adaptkit.turn.vad import SileroVAD

        return SileroVAD(), {"kind": "silero"}
    if recipe.gate.path and recipe.gate.path.endswith(".onnx"):
        from adaptkit.turn.gate_onnx import OnnxStreamingGate

        return OnnxStreamingGate(recipe.gate.path), {"kind": "gru", "loaded": recipe.gate.path, "runtime": "onnxruntime"}
    if recipe.gate.path:
        model, stats = gru.load_gate(Path(recipe.gate.path)), {"loaded": recipe.gate.path}
    else:
        model, stats = gru.train_gate(sorted(p for p in train.glob("*.wav") if not p.name.endswith(".stereo.wav")), steps=recipe.gate.steps, lr=recipe.gate.lr)
        gru.save_gate(model, out / "gate.safetensors")
    return gru.StreamingGate(model), {"kind": "gru", **stats}


def run_study(recipe: CascadeRecipe, device: str | None = None) -> dict[str, Any]:
    """Run every system on the test conversations; write report.md, report.json and plots/tradeoff.png.

    The turn models run on `device` (default: `cuda` when there is a GPU, else `cpu`; one this machine
    lacks is refused before anything trains); the gates and Smart Turn stay on the CPU."""
    from adaptkit.data.audio import load_audio
    from adaptkit.devices import resolve_device

    where = resolve_device(device)
    out = recipe.output_dir
    out.mkdir(parents=True, exist_ok=True)
    folder = _data_folder(recipe) if recipe.data else None  # a recipe's own data exists only after training it
    if folder is not None:
        _test_conversations(recipe, folder)  # fail on missing data before any training
    verifiers = {name: _verifier(name, spec, where) for name, spec in recipe.turn_models.items()}
    folder = folder or _data_folder(recipe)
    convs = _test_conversations(recipe, folder)
    waves = [load_audio(p, cascade.SAMPLE_RATE) for p, _ in convs]
    records = [r for _, r in convs]
    gate, gate_info = _gate(recipe, folder / "train", out)
    systems: dict[str, dict] = {}

    def add(name: str, gate_name: str, verifier, kind: str = "verifier", every: bool = False, g=None, traces=None,
            latency: dict | None = None) -> tuple[list, dict | None]:
        start = time.perf_counter()
        if traces is None:  # every call of the gate and of the turn model timed, on one thread
            timed_gate, timed = Timed(g or gate), Timed(verifier) if verifier is not None else None
            with one_thread():
                traces = [cascade.stream(w, timed_gate, timed, record=r, asks=recipe.asks, every_chunk=every,
                                         gate_threshold=recipe.gate.threshold) for w, r in zip(waves, records)]
            latency = {"gate": percentiles(timed_gate.ms), "turn_model": percentiles(timed.ms) if timed else None}
        threshold = recipe.timeout if kind == "timeout" else recipe.threshold
        hears = verifier.hears if verifier is not None else f"the mono mix through the {gate_name} gate: the silence length alone"
        systems[name] = {"gate": gate_name, "asked": "every chunk" if every else "timeout" if kind == "timeout" else f"after {recipe.asks} s",
                         "hears": hears, **cascade.score_system(traces, records, kind, threshold), "latency_ms": latency,
                         "seconds": round(time.perf_counter() - start, 2)}
        log.info("%s: macro F1 %.3f", name, systems[name]["frames"]["macro_f1"])
        return traces, latency

    gate_name = "GRU" if gate_info["kind"] == "gru" else "Silero VAD"
    first = None
    for name, v in verifiers.items():
        ran = add(f"cascade: {name}", gate_name, v)
        first = first or ran
        if recipe.every_chunk:
            add(f"every chunk: {name}", gate_name, v, every=True)
    add(f"{gate_name} gate + timeout", gate_name, None, "timeout", traces=first[0], latency={"gate": first[1]["gate"], "turn_model": None})
    if recipe.baselines:
        from adaptkit.turn.vad import SileroVAD

        silero = SileroVAD() if gate_info["kind"] != "silero" else gate
        if "vad_timeout" in recipe.baselines:
            add("baseline: Silero VAD + timeout", "Silero VAD", None, "timeout", g=silero)
        if "smart_turn" in recipe.baselines:
            from adaptkit.turn.verifiers import SmartTurnVerifier

            add("baseline: Smart Turn v3.2", "Silero VAD", SmartTurnVerifier(audio=recipe.smart_turn_audio), g=silero)
    report = {"data": str(folder / recipe.test), "split": recipe.test, "conversations": len(convs),
              "minutes": round(sum(len(w) for w in waves) / 16000 / 60, 2), "gate": gate_info, "threshold": recipe.threshold,
              "timeout": recipe.timeout, "asks": recipe.asks, "device": str(where),
              "final_punctuation": split_punctuation(folder / recipe.test), "asr_words": asr_word_errors(verifiers),
              "systems": systems, "latency_ms": part_latency(systems)}
    write_report(report, out)
    return report


def _test_conversations(recipe: CascadeRecipe, folder: Path) -> list[tuple[Path, dict]]:
    """The test split's conversations; with Smart Turn on the own channel, each must have its stereo file."""
    from adaptkit.synth.dataset import stereo_path
    from adaptkit.turn.verifiers import need_stereo

    convs = _conversations(folder / recipe.test, recipe.limit)
    if "smart_turn" in recipe.baselines and recipe.smart_turn_audio == "own_channel":
        for wav, _ in convs:
            need_stereo(stereo_path(wav))
    return convs


def asr_word_errors(verifiers: dict[str, Any]) -> dict[str, dict] | None:
    """Per turn model that reads an ASR's words: that ASR's word errors on the units it transcribed
    (`AsrWords.word_errors`), so the report says how well the LM's input was heard; None when none does."""
    from adaptkit.turn.words import AsrWords

    found = {name: v.words.word_errors() for name, v in verifiers.items() if isinstance(getattr(v, "words", None), AsrWords)}
    return {name: x for name, x in found.items() if x is not None} or None


def split_punctuation(split: Path) -> dict[str, Any]:
    """The final punctuation rates of the split's turn_end.jsonl (`adaptkit.turn.punctuation`), logged;
    {"data": None, "missing": path} when the split has none (data not made by adaptkit synth)."""
    from adaptkit.turn.punctuation import describe, split_final_punctuation

    path = split / "turn_end.jsonl"
    if not path.is_file():
        log.info("final punctuation: not measured, no %s", path)
        return {"data": None, "missing": str(path)}
    rates = split_final_punctuation(path)
    log.info("%s %s", split.name, describe(rates))
    return rates


def part_latency(systems: dict[str, dict]) -> dict[str, dict]:
    """Per-call latency of each part, from the systems that ran it as the cascade does: each gate
    (`gate: GRU`, `gate: Silero VAD`), each turn model asked after the silence, and Smart Turn."""
    out: dict[str, dict] = {}
    for name, s in systems.items():
        latency = s.get("latency_ms") or {}
        if latency.get("gate"):
            out.setdefault(f"gate: {s['gate']}", latency["gate"])
        if latency.get("turn_model") and not name.startswith("every chunk: "):
            out.setdefault(name.split(": ", 1)[-1], latency["turn_model"])
    return out


def write_report(report: dict, out: Path) -> None:
    """report.json, report.md and plots/tradeoff.png in `out` (from a study's report dict)."""
    from adaptkit.eval import frame_metrics as fm

    (out / "plots").mkdir(parents=True, exist_ok=True)
    fm.plot_tradeoff({n: s["curve"] for n, s in report["systems"].items()}, out / "plots" / "tradeoff.png",
                     title=f"False cut-offs vs latency ({report.get('split', '')}, {report['conversations']} calls)")
    atomic_write_text(out / "report.json", json.dumps(report, indent=1, default=_json) + "\n")
    atomic_write_text(out / "report.md", to_markdown(report))


def _json(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _f(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return "inf" if x == float("inf") else f"{x:.3g}"
    return str(x)


def to_markdown(report: dict) -> str:
    """The comparison table, then the trade-off at latency and cut-off budgets."""
    systems = report["systems"]
    lines = [f"# Turn taking on {report['data']}", "",
             f"{report['conversations']} conversations, {report['minutes']} min; frames of 100 ms; operating point: "
             f"P(end) >= {report['threshold']} (timeouts: {report['timeout']} s of silence). Gate: {report['gate'].get('kind')}; "
             f"turn models on {report.get('device', 'cpu')}. "
             "A frame's label is what the system knows at the frame's end (the first 200 ms of a silence stay Pause until "
             "the turn model answers). A Gap is detected when the system labels it Gap before the next speaker starts; "
             "its latency runs from the start of the silence; a false cut-off is a Pause labelled Gap before the speaker "
             "goes on. This table and the plot use the two-party mode (adaptkit.eval.frame_metrics); the eot-bench mode "
             "follows below.", "",
             "| system | gate | turn model asked | calls/min | SU F1 | Pause F1 | Gap F1 | macro F1 | mean IoU | false cut-offs | Gap latency (median s) | Gaps detected |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in systems.items():
        pc, t = s["frames"]["per_class"], s["at_threshold"]
        lines.append(f"| {name} | {s['gate']} | {s['asked']} | {_f(s['calls_per_minute'])} | {_f(pc['SU']['f1'])} | {_f(pc['Pause']['f1'])} | "
                     f"{_f(pc['Gap']['f1'])} | {_f(s['frames']['macro_f1'])} | {_f(s['frames']['mean_iou'])} | {_f(t['false_cutoff_rate'])} | "
                     f"{_f(t['gap_latency_median'])} | {_f(t['gap_detected'])} |")
    lines += ["", "## What each system hears", "", "| system | hears |", "|---|---|"]
    lines += [f"| {name} | {s.get('hears', '–')} |" for name, s in systems.items()]
    lines += ["", _punctuation_line(report.get("final_punctuation"))]
    for name, x in (report.get("asr_words") or {}).items():
        lines += ["", f"ASR words read by {name}: WER {x['wer']:.3f} over {x['units']} units ({x['words']} reference words; "
                      f"{x['substitutions']} substituted, {x['deletions']} deleted, {x['insertions']} inserted; "
                      f"{x['empty_units']} units heard as nothing), both sides normalised like LiveKit."]
    lines += _budget_table(systems, "budgets", "two-party mode",
                           "every Pause or Gap silence of 100 ms or more is a decision point, a system fires when its score is >= the "
                           "threshold, latency is the median over Gaps and a missed Gap has latency inf (inf: half the Gaps missed)")
    if all("eot_bench" in s for s in systems.values()):
        timeout = next(iter(systems.values()))["eot_bench"]["timeout"]
        lines += _budget_table({n: s["eot_bench"] for n, s in systems.items()}, "budgets", "eot-bench mode",
                               "LiveKit eot-bench's definitions: every Gap, and the Pauses of 0.2-5 s, are decision points, a system "
                               f"fires when its score is > the threshold, latency is the mean over Gaps and a missed Gap is charged the "
                               f"timeout ({timeout:g} s)")
    if report.get("latency_ms"):
        lines += ["", "## Per-call latency", "", "Wall time of each call (a gate on one 100 ms chunk, features included; a turn model "
                  "on the audio before a silence), torch on one intra-op thread (onnxruntime models run on one thread too).", "",
                  "| part | calls | p50 ms | p95 ms |", "|---|---|---|---|"]
        lines += [f"| {part} | {x['calls']} | {_f(x['p50_ms'])} | {_f(x['p95_ms'])} |" for part, x in report["latency_ms"].items()]
    lines += ["", "![False cut-offs vs latency (two-party mode)](plots/tradeoff.png)", ""]
    return "\n".join(lines)


def _punctuation_line(rates: dict | None) -> str:
    """The report's line on the split's final punctuation rates (`split_punctuation`)."""
    from adaptkit.turn.punctuation import describe

    if not rates or rates.get("data") is None:
        missing = (rates or {}).get("missing", "the split's turn_end.jsonl")
        return f"Final punctuation of the end-of-turn data: not measured (no {missing})."
    return (f"Turn-end data of this split ({rates['data']}), {describe(rates)}: an end-of-turn LM that reads punctuated "
            "reference words can read the answer off these marks.")


def _budget_table(systems: dict, key: str, mode: str, definition: str) -> list[str]:
    """One section: false cut-offs at latency budgets and latency at cut-off budgets, in one mode."""
    keys = list(next(iter(systems.values()))[key])
    lines = ["", f"## False cut-offs at a latency budget, latency at a false cut-off budget: {mode}", "",
             "Over the threshold (or timeout) sweep: the lowest false cut-off rate whose Gap latency fits the budget, "
             f"and the lowest latency whose false cut-off rate fits the budget; {definition}.", "",
             "| system | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for name, s in systems.items():
        lines.append(f"| {name} | " + " | ".join(_f(s[key][k]) for k in keys) + " |")
    return lines
