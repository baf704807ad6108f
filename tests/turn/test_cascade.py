"""The speculative cascade: when the turn model is asked, the labels it gives, the decisions it makes,
and the whole study on tiny recipes (gate trained, turn models trained, baselines, report)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from adaptkit.errors import AdaptkitError
from adaptkit.eval.frame_metrics import DecisionPoint, decision_points
from adaptkit.turn import cascade

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


class ScriptedGate:
    """Speech exactly where the reference frames say SU."""

    def __init__(self, labels: list[str]):
        self.labels, self.k = labels, 0

    def reset(self) -> None:
        self.k = 0

    def __call__(self, chunk: np.ndarray) -> float:
        self.k += 1
        return float(self.labels[self.k - 1] == "SU")


class OracleVerifier:
    """P(end) = 1 inside a reference Gap, 0 elsewhere; records when it is asked."""

    def __init__(self):
        self.asked: list[float] = []

    def reset(self, record: dict) -> None:
        self.silences = record["silences"]

    def __call__(self, audio: np.ndarray, end: float) -> float:
        self.asked.append(end)
        assert len(audio) == round(end * 16000)
        return float(any(s["label"] == "Gap" and s["start"] - 0.1 <= end < s["end"] for s in self.silences))


def _record(labels: list[str]) -> dict:
    """A record whose silences are the non-SU runs of `labels` (0.1 s frames)."""
    silences, k = [], 0
    while k < len(labels):
        if labels[k] == "SU":
            k += 1
            continue
        j = k
        while j < len(labels) and labels[j] == labels[k]:
            j += 1
        silences.append({"start": round(k * 0.1, 3), "end": round(j * 0.1, 3), "label": labels[k],
                         "before": "spk_0" if k else None, "after": "spk_1" if j < len(labels) else None})
        k = j
    return {"frames": {"hop": 0.1, "labels": labels}, "silences": silences}


LABELS = ["SU"] * 5 + ["Pause"] * 4 + ["SU"] * 6 + ["Gap"] * 5 + ["SU"] * 4 + ["Pause"] * 1 + ["SU"] * 5


def test_the_turn_model_is_asked_once_per_silence_after_200_ms_and_its_answer_holds():
    record, wave = _record(LABELS), np.zeros(len(LABELS) * 1600, np.float32)
    verifier = OracleVerifier()
    trace = cascade.stream(wave, ScriptedGate(LABELS), verifier, record=record)
    # asked at the 2nd chunk of the Pause (onset 0.5 s) and of the Gap (onset 1.5 s), not in the 100 ms Pause
    assert verifier.asked == [0.5, 1.5] and trace.calls == 2
    labels = trace.labels(0.5)
    # causal: the first 200 ms of a silence are Pause until the answer comes, then the answer holds
    assert labels == ["SU"] * 5 + ["Pause"] * 4 + ["SU"] * 6 + ["Pause"] + ["Gap"] * 4 + ["SU"] * 4 + ["Pause"] + ["SU"] * 5
    every = cascade.stream(wave, ScriptedGate(LABELS), OracleVerifier(), record=record, every_chunk=True)
    assert every.calls == len(LABELS) and every.labels(0.5)[15] == "Gap"  # from the first chunk of the Gap
    timeout = trace.labels(0.3, "timeout")
    assert timeout[5:9] == ["Pause", "Pause", "Gap", "Gap"] and timeout[24] == "Pause"


def test_fires_are_seconds_from_the_silence_start_to_the_first_gap_label():
    record = _record(LABELS)
    trace = cascade.stream(np.zeros(len(LABELS) * 1600, np.float32), ScriptedGate(LABELS), OracleVerifier(), record=record)
    points = decision_points(record["silences"])
    assert points == [DecisionPoint(0.5, 0.9, "Pause"), DecisionPoint(1.5, 2.0, "Gap"), DecisionPoint(2.4, 2.5, "Pause")]
    assert cascade.fires(trace, points, 0.5) == [None, 0.2, None]
    assert cascade.fires(trace, points, 0.3, "timeout") == [0.3, 0.3, None]  # a cut-off in the first Pause
    # at threshold 0 every non-speech chunk fires: the first chunk ending inside each silence, never a speech chunk
    assert cascade.fires(trace, points, 0.0) == [0.1, 0.1, 0.1]
    s = cascade.score_system([trace], [record])
    assert s["at_threshold"]["false_cutoff_rate"] == 0.0 and s["at_threshold"]["gap_latency_median"] == pytest.approx(0.2)
    assert s["frames"]["per_class"]["SU"]["f1"] == 1.0 and s["frames"]["per_class"]["Gap"]["recall"] == pytest.approx(0.8)
    assert s["calls_per_minute"] == pytest.approx(2 / (len(LABELS) * 0.1 / 60))
    t = cascade.score_system([trace], [record], "timeout", 0.3)
    assert t["calls_per_minute"] == 0.0 and t["at_threshold"]["false_cutoff_rate"] == 0.5


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """The shipped tiny cascade recipe over fast copies of the tiny turn recipes (3 steps, 6 calls)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    pytest.importorskip("onnxruntime")  # the Smart Turn baseline
    from adaptkit.synth import SynthConfig, generate

    tmp = tmp_path_factory.mktemp("cascade")
    data = tmp / "data"  # one set of calls for both turn models and the cascade
    generate(SynthConfig(out=data, langs=("en",), n=6, duration=8.0, telephone=True, seed=0, jobs=1, stereo=True))
    for name in ("turn_tags", "turn_end"):
        r = yaml.safe_load((RECIPES / "tiny" / f"{name}.yaml").read_text())
        kept = {k: v for k, v in r["data"].items() if k != "synth"}
        r["data"] = {**kept, "train": str(data / "train" / f"{name}.jsonl"), "dev": str(data / "test_id" / f"{name}.jsonl")}
        r["train"].update(max_steps=3, eval_every=0)
        r["output_dir"] = str(tmp / name)
        (tmp / f"{name}.yaml").write_text(yaml.safe_dump(r))
    from adaptkit.turn.study import CascadeRecipe, run_study

    recipe = CascadeRecipe.load(RECIPES / "tiny" / "cascade.yaml", (
        f"turn_models={{tags: {tmp / 'turn_tags.yaml'}, text: {tmp / 'turn_end.yaml'}}}", "limit=1", "gate.steps=20", f"data={data}",
        f"output_dir={tmp / 'out'}"))
    return run_study(recipe), tmp / "out"


def test_tiny_cascade_recipe_trains_and_scores_every_system(tiny_study):
    report, out = tiny_study
    systems = report["systems"]
    assert set(systems) == {"cascade: tags", "every chunk: tags", "cascade: text", "every chunk: text", "GRU gate + timeout",
                            "baseline: Silero VAD + timeout", "baseline: Smart Turn v3.2"}
    for name in ("tags", "text"):  # acceptance: at least 10x fewer turn-model calls than on every chunk
        assert systems[f"every chunk: {name}"]["calls_per_minute"] >= 10 * systems[f"cascade: {name}"]["calls_per_minute"] > 0
    assert systems["every chunk: tags"]["calls_per_minute"] == pytest.approx(600, rel=0.02)
    assert all(0 <= s["frames"]["macro_f1"] <= 1 for s in systems.values())
    saved = json.loads((out / "report.json").read_text())
    assert saved["systems"].keys() == systems.keys() and (out / "plots" / "tradeoff.png").stat().st_size > 1000
    assert (out / "gate.safetensors").is_file() and "| cascade: tags | GRU |" in (out / "report.md").read_text()
    markdown = (out / "report.md").read_text()
    assert "latency at a false cut-off budget: two-party mode" in markdown
    assert "latency at a false cut-off budget: eot-bench mode" in markdown
    latency = report["latency_ms"]  # per-call p50 / p95 of each part, on one thread
    assert set(latency) == {"gate: GRU", "gate: Silero VAD", "tags", "text", "Smart Turn v3.2"}
    for part in latency.values():
        assert part["calls"] > 0 and 0 < part["p50_ms"] <= part["p95_ms"]
    assert systems["cascade: tags"]["latency_ms"]["turn_model"]["calls"] < systems["every chunk: tags"]["latency_ms"]["turn_model"]["calls"]
    assert all(s["latency_ms"]["gate"]["p50_ms"] > 0 for s in systems.values()) and "## Per-call latency" in markdown
    assert saved["latency_ms"] == latency
    hears = {name: s["hears"] for name, s in systems.items()}  # what each system hears, in the report
    assert hears["cascade: tags"] == "the mono mix, last 8 s" and hears["every chunk: text"] == "reference words, punctuated"
    assert hears["baseline: Smart Turn v3.2"] == "the judged speaker's own channel, last 8 s"
    assert hears["GRU gate + timeout"] == "the mono mix through the GRU gate: the silence length alone"
    assert "| baseline: Smart Turn v3.2 | the judged speaker's own channel, last 8 s |" in markdown
    rates = report["final_punctuation"]  # the scored split's turn_end data
    assert rates["data"].endswith("test_ood/turn_end.jsonl") and rates["incomplete"]["turns"] + rates["complete"]["turns"] > 0
    assert saved["final_punctuation"] == rates and "final punctuation: " in markdown
    for s in systems.values():  # eot-bench charges misses the timeout: its latency budgets are never inf
        assert s["eot_bench"]["mode"] == "eot-bench" and s["curve"][0]["mode"] == "two-party"
        assert all(v is None or v < float("inf") for v in s["eot_bench"]["budgets"].values())


@pytest.mark.parametrize("override,message", [
    ("gate.kind=lstm", "gate.kind: unknown gate 'lstm'"),
    ("baselines=[vap]", "baselines: unknown baseline 'vap'"),
    ("turn_models={}", "turn_models: name at least one turn model"),
    ("asks=soon", "cascade.asks[0]: expected number"),
])
def test_bad_cascade_recipe_is_one_line(override, message):
    from adaptkit.turn.study import CascadeRecipe

    with pytest.raises(AdaptkitError) as err:
        CascadeRecipe.load(RECIPES / "tiny" / "cascade.yaml", (override,))
    assert message in str(err.value) and str(err.value).startswith(str(RECIPES / "tiny" / "cascade.yaml"))


def test_cascade_command_turns_a_bad_recipe_into_exit_2(tmp_path):
    from click.testing import CliRunner

    from adaptkit.cli import main

    bad = tmp_path / "c.yaml"
    bad.write_text("turn_models: {a: nowhere.yaml}\ngate: {kind: gru, stepz: 3}\n")
    result = CliRunner().invoke(main, ["cascade", str(bad)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {bad}: gate.stepz: unknown key (closest: steps); allowed: kind, steps, lr, path, threshold"


def test_missing_conversations_fail_before_any_training(tmp_path):
    from adaptkit.turn.study import CascadeRecipe, run_study

    tags = yaml.safe_load((RECIPES / "tiny" / "turn_tags.yaml").read_text())
    tags["output_dir"] = str(tmp_path / "tags")
    (tmp_path / "tags.yaml").write_text(yaml.safe_dump(tags))
    recipe = CascadeRecipe.load(RECIPES / "tiny" / "cascade.yaml", (
        f"turn_models={{tags: {tmp_path / 'tags.yaml'}}}", f"data={tmp_path / 'none'}", f"output_dir={tmp_path / 'out'}"))
    with pytest.raises(AdaptkitError, match=r"data: .*none/test_ood is not a folder of conversations"):
        run_study(recipe)
    assert not (tmp_path / "tags").exists()  # the turn model was not trained


def test_a_broken_conversation_record_names_the_file_and_line(tmp_path):
    from adaptkit.turn.study import _conversations

    (tmp_path / "a.json").write_text('{"frames": {"hop": 0.1,\n "labels": [}\n')
    with pytest.raises(AdaptkitError, match=r"a.json:2: not valid JSON"):
        _conversations(tmp_path)
    (tmp_path / "a.json").write_text('{"frames": {}}')
    with pytest.raises(AdaptkitError, match=r"a.json: not an adaptkit synth record"):
        _conversations(tmp_path)


@pytest.mark.parametrize("language,joined", [("ja", "はいそうです"), ("en", "はい そうです")])
def test_the_text_verifier_reads_the_words_said_before_the_silence(language, joined):
    from adaptkit.eval.run import TaskModel
    from adaptkit.models import Loaded, build_tiny
    from adaptkit.turn.verifiers import EndOfTurnVerifier

    model, tok = build_tiny("composed", encoder=None, llm="qwen3")
    verifier = EndOfTurnVerifier(TaskModel(Loaded("composed", model, tok, None), "turn_end", language, "", set(), "tiny"))
    seen = []
    verifier.scorer.score = lambda messages: seen.append(messages) or 0.7
    units = [{"speaker": "spk_0", "start": 0.0, "end": 1.0, "text": "こんにちは", "label": "complete"},
             {"speaker": "spk_1", "start": 1.3, "end": 2.0, "text": "はい", "label": "incomplete"},
             {"speaker": "spk_0", "start": 2.0, "end": 2.2, "text": "ええ", "label": "backchannel"},
             {"speaker": "spk_1", "start": 2.5, "end": 3.0, "text": "そうです", "label": "complete"}]
    verifier.reset({"language": language, "units": units})
    assert verifier(np.zeros(1), 0.5) == 0.0 and seen == []  # nothing said yet
    assert verifier(np.zeros(1), 3.0) == 0.7
    assert seen[-1] == [{"role": "assistant", "content": "こんにちは"}, {"role": "user", "content": joined}]


def test_smart_turn_on_the_own_channel_refuses_calls_without_stereo_before_training(tmp_path):
    import soundfile as sf

    from adaptkit.turn.study import CascadeRecipe, run_study

    split = tmp_path / "data" / "test_ood"
    split.mkdir(parents=True)
    (split / "c.json").write_text(json.dumps({"id": "c", "units": [], "silences": [], "frames": {"hop": 0.1, "labels": ["SU"] * 30}}))
    sf.write(split / "c.wav", np.zeros(3 * 16000, np.float32), 16000)
    recipes = RECIPES / "tiny"
    tags = yaml.safe_load((recipes / "turn_tags.yaml").read_text())
    tags["output_dir"] = str(tmp_path / "tags")
    (tmp_path / "tags.yaml").write_text(yaml.safe_dump(tags))
    recipe = CascadeRecipe.load(recipes / "cascade.yaml", (f"turn_models={{tags: {tmp_path / 'tags.yaml'}}}", f"data={tmp_path / 'data'}",
                                                           f"output_dir={tmp_path / 'out'}"))
    with pytest.raises(AdaptkitError, match=r"^smart_turn_audio: own_channel needs .*test_ood/c\.stereo\.wav"):
        run_study(recipe)
    assert not (tmp_path / "tags").exists()  # the turn model was not trained
    with pytest.raises(AdaptkitError, match=r"cascade.yaml: smart_turn_audio: unknown audio 'stereo'"):
        CascadeRecipe.load(recipes / "cascade.yaml", ("smart_turn_audio=stereo",))


def _load(tmp_path, turn_models: str):
    from adaptkit.turn.study import CascadeRecipe

    (tmp_path / "asr").mkdir(exist_ok=True)
    path = tmp_path / "c.yaml"
    path.write_text(f"turn_models: {turn_models}\n")
    return CascadeRecipe.load(path)


def test_the_recipe_takes_a_path_or_a_mapping(tmp_path):
    from adaptkit.turn.study import TurnModel

    recipe = _load(tmp_path, "{a: t.yaml, b: {model: n.yaml, words: oracle_normalised}, c: {model: n.yaml, words: asr, asr: asr}}")
    assert recipe.turn_models == {"a": TurnModel(str(tmp_path / "t.yaml")), "b": TurnModel(str(tmp_path / "n.yaml"), "oracle_normalised"),
                                  "c": TurnModel(str(tmp_path / "n.yaml"), "asr", str(tmp_path / "asr"))}
    assert recipe.smart_turn_audio == "own_channel"


@pytest.mark.parametrize("turn_models,message", [
    ("{a: {model: n.yaml, words: asrr}}", "turn_models.a.words: unknown words mode 'asrr' (closest: asr); use one of oracle, oracle_normalised, asr"),
    ("{a: {model: n.yaml, words: asr}}", "turn_models.a.asr: give the ASR checkpoint with words: asr"),
    ("{a: {model: n.yaml, asr: asr}}", "turn_models.a.asr: read only with words: asr (words is not given)"),
    ("{a: {model: n.yaml, words: asr, asr: nowhere}}", "turn_models.a.asr: no such file or folder"),
    ("{a: {modle: n.yaml}}", "turn_models.a.modle: unknown key (closest: model); allowed: model, words, asr"),
    ("{a: {words: oracle}}", "turn_models.a: missing key 'model'"),
    ("{a: 3}", "turn_models.a: expected a path or a mapping {model, words, asr}, got int 3"),
])
def test_bad_turn_model_entries_are_one_line(tmp_path, turn_models, message):
    with pytest.raises(AdaptkitError) as err:
        _load(tmp_path, turn_models)
    assert str(err.value).startswith(f"{tmp_path / 'c.yaml'}: {message}") and "\n" not in str(err.value)
