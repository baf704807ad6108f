"""The pipecat analyzer, driven by pipecat's own TurnAnalyzerUserTurnStopStrategy with 20 ms int16
frames of the shared calls, ends turns where `adaptkit cascade` labels the first Gap of a silence."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("pipecat", reason="needs pipecat-ai (pip install 'adaptkit[turn]')")

from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState  # noqa: E402
from pipecat.frames.frames import InputAudioRawFrame  # noqa: E402
from pipecat.processors.frame_processor import FrameProcessorSetup  # noqa: E402
from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy  # noqa: E402
from pipecat.utils.asyncio.task_manager import TaskManager  # noqa: E402
from pipecat.clocks.system_clock import SystemClock  # noqa: E402

from adaptkit.errors import AdaptkitError  # noqa: E402
from adaptkit.integrations.pipecat import CascadeTurnAnalyzer, CascadeTurnParams  # noqa: E402
from adaptkit.turn import cascade  # noqa: E402
from adaptkit.turn.gate import StreamingGate  # noqa: E402

FRAME = 320  # 20 ms at 16 kHz, what pipecat's transports send


def _int16(wave: np.ndarray) -> np.ndarray:
    """The call as pipecat receives it: int16 PCM."""
    return np.clip(np.round(wave * 32768.0), -32768, 32767).astype(np.int16)


def _cascade_decisions(trace: cascade.Trace, threshold: float, kind: str = "verifier") -> list[int]:
    """Chunks where adaptkit's cascade labels the first Gap of a non-speech run that follows speech."""
    labels, heard, out = trace.labels(threshold, kind), False, []
    for c, label in enumerate(labels):
        heard = heard or label == "SU"
        if label == "Gap" and heard and (c == 0 or labels[c - 1] != "Gap"):
            out.append(c)
    return out


async def _through_pipecat(analyzer: CascadeTurnAnalyzer, pcm: np.ndarray, frame: int, rate: int = 16000) -> list[int]:
    """Feed the call to pipecat's stop strategy; the chunk (100 ms) at whose end each user turn stopped
    (in the 16 kHz stream the analyzer heard: at another rate, the resampler's delay later in the input)."""
    strategy = TurnAnalyzerUserTurnStopStrategy(turn_analyzer=analyzer, wait_for_transcript=False)
    await strategy.setup(FrameProcessorSetup(clock=SystemClock(), task_manager=TaskManager(loop=asyncio.get_running_loop()),
                                             pipeline_worker=None, audio_in_sample_rate=rate))
    fed, stops = 0, []

    @strategy.event_handler("on_user_turn_stopped")
    async def stopped(_strategy, *args):
        stops.append(round(fed / 1600) - 1 if rate == 16000 else analyzer.cascade.fed // 1600 - 1)
        await strategy.handle_user_turn_stopped()  # what pipecat's turn controller does next

    for k in range(0, len(pcm), frame):
        fed = min(k + frame, len(pcm)) * 16000 // rate
        await strategy.process_frame(InputAudioRawFrame(audio=pcm[k : k + frame].tobytes(), sample_rate=rate, num_channels=1))
    await strategy.cleanup()
    return stops


def _tag_verifier():
    """The 3-tag verifier on a tiny random composed Speech-LLM (parakeet encoder, Qwen2) with the tags added."""
    from adaptkit.eval.run import TaskModel
    from adaptkit.freeze import apply
    from adaptkit.models import load
    from adaptkit.recipe import ModelSection
    from adaptkit.tasks.turn_tags import TAGS
    from adaptkit.turn.verifiers import TagVerifier

    loaded = load(ModelSection(tiny="composed", encoder="parakeet_encoder", llm="qwen2", projector={"type": "linear"}))
    loaded.model, _ = apply(loaded.model, {"add_tokens": list(TAGS.values()), "train": ["projector"]}, tokenizer=loaded.tokenizer)
    return TagVerifier(TaskModel(loaded, "turn_tags", "en", "", set(TAGS.values()), "tiny"))


@pytest.fixture(scope="module", params=["smart_turn", "tags"])
def verifier(request):
    if request.param == "smart_turn":
        pytest.importorskip("onnxruntime")
        from adaptkit.turn.verifiers import SmartTurnVerifier

        return SmartTurnVerifier()
    return _tag_verifier()


def test_pipecat_ends_turns_where_the_cascade_does(trained_gate, call_waves, verifier):
    tests = [(name, _int16(wave)) for name, wave, _ in call_waves if not name.startswith("train/")]
    traces = [cascade.stream(pcm.astype(np.float32) / 32768.0, StreamingGate(trained_gate), verifier) for _, pcm in tests]
    asked = [p for t in traces for p, q in zip(t.end_probability, [None] + t.end_probability) if p is not None and q is None]
    threshold = float(np.median(asked))  # some silences end the turn and some do not: the threshold decides
    expected = [_cascade_decisions(t, threshold) for t in traces]
    assert 0 < sum(map(len, expected)) < len(asked)
    runs = [(pcm, want, FRAME) for (_, pcm), want in zip(tests, expected)]
    runs.append((tests[0][1], expected[0], 480))  # 30 ms frames do not divide a chunk: decided at the frame that ends it
    for pcm, want, frame in runs:
        params = CascadeTurnParams(threshold=threshold, stop_secs=None)
        got = asyncio.run(_through_pipecat(CascadeTurnAnalyzer(StreamingGate(trained_gate), verifier, params=params), pcm, frame))
        assert got == want, (frame, got, want)


class Never:
    """P(end of turn) = 0: only the safety net ends a turn."""

    def reset(self, record):
        pass

    def __call__(self, audio, end):
        return 0.0


def test_the_safety_net_ends_a_silence_after_stop_secs(trained_gate, call_waves):
    fired = 0
    for name, wave, _ in call_waves:
        if name.startswith("test_"):
            pcm = _int16(wave)
            trace = cascade.stream(pcm.astype(np.float32) / 32768.0, StreamingGate(trained_gate), Never())
            want = _cascade_decisions(trace, 0.3, "timeout")  # the gate + 0.3 s timeout system
            params = CascadeTurnParams(threshold=0.9, stop_secs=0.3)
            got = asyncio.run(_through_pipecat(CascadeTurnAnalyzer(StreamingGate(trained_gate), Never(), params=params), pcm, FRAME))
            assert got == want, (name, got, want)
            fired += len(got)
    assert fired > 0


def test_analyzer_interface_and_refusals(trained_gate):
    class Always:
        def reset(self, record):
            pass

        def __call__(self, audio, end):
            return 1.0

    class Scripted:  # speech for 5 chunks, then silence
        def __init__(self):
            self.k = 0

        def reset(self):
            self.k = 0

        def __call__(self, chunk):
            self.k += 1
            return float(self.k <= 5)

    analyzer = CascadeTurnAnalyzer(Scripted(), Always(), params=CascadeTurnParams(threshold=0.7))
    analyzer.set_sample_rate(16000)
    silence = np.zeros(FRAME, np.int16).tobytes()
    states = [analyzer.append_audio(silence, False) for _ in range(5 * 5)]
    assert analyzer.speech_triggered is True and states == [EndOfTurnState.INCOMPLETE] * 25
    states = [analyzer.append_audio(silence, False) for _ in range(2 * 5)]  # 200 ms of non-speech: asked, 1.0 >= 0.7
    assert states == [EndOfTurnState.INCOMPLETE] * 9 + [EndOfTurnState.COMPLETE]
    state, metrics = asyncio.run(analyzer.analyze_end_of_turn())
    assert state == EndOfTurnState.COMPLETE and metrics.is_complete and metrics.probability == 1.0
    assert metrics.e2e_processing_time_ms == pytest.approx(200.0) and asyncio.run(analyzer.analyze_end_of_turn())[1] is None
    assert not analyzer.speech_triggered and analyzer.params.threshold == 0.7
    with pytest.raises(ValueError, match="threshold"):
        CascadeTurnParams(threshold=1.5)


def test_from_files_builds_the_cascade_from_a_saved_gate(trained_gate, tmp_path):
    pytest.importorskip("onnxruntime")
    from adaptkit.turn.gate import save_gate

    save_gate(trained_gate, tmp_path / "gate.safetensors")
    analyzer = CascadeTurnAnalyzer.from_files(tmp_path / "gate.safetensors", "smart_turn", threshold=0.3, stop_secs=None)
    assert isinstance(analyzer.cascade.gate, StreamingGate) and analyzer.params.threshold == 0.3 and analyzer.params.stop_secs is None
    with pytest.raises(AdaptkitError, match="not a gate saved by save_gate"):
        CascadeTurnAnalyzer.from_files(tmp_path / "missing.safetensors")


def test_a_text_turn_model_is_refused_in_one_line(monkeypatch):
    import adaptkit.eval.run as run_module
    from adaptkit.eval.run import TaskModel
    from adaptkit.integrations.pipecat import tag_verifier

    monkeypatch.setattr(run_module, "load_task_model", lambda path: TaskModel(None, "turn_end", "en", "", set(), "x"))
    with pytest.raises(AdaptkitError, match=r"^pipecat analyzer: runs/turn_end/adapter is a turn_end model, which reads text; .*adaptkit.integrations.livekit"):
        tag_verifier("runs/turn_end/adapter")


def test_8_khz_telephony_is_resampled_as_it_streams(trained_gate, call_waves):
    import soxr
    from scipy.signal import resample_poly

    fired = 0
    for name, wave, _ in call_waves:
        if not name.startswith("test_"):
            continue
        pcm8 = _int16(resample_poly(wave, 1, 2))
        stream = soxr.ResampleStream(8000, 16000, 1, dtype="float32", quality="HQ")  # what the analyzer hears
        heard = np.concatenate([stream.resample_chunk(pcm8[k : k + 160].astype(np.float32) / 32768.0) for k in range(0, len(pcm8), 160)])
        whole = len(heard) // 1600  # the analyzer waits for whole chunks; the cascade pads the last one
        want = [c for c in _cascade_decisions(cascade.stream(heard, StreamingGate(trained_gate), Never()), 0.3, "timeout") if c < whole]
        params = CascadeTurnParams(threshold=0.9, stop_secs=0.3)
        got = asyncio.run(_through_pipecat(CascadeTurnAnalyzer(StreamingGate(trained_gate), Never(), params=params), pcm8, 160, 8000))
        assert got == want, (name, got, want)
        fired += len(got)
    assert fired > 0
