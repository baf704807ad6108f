"""Smart Turn on the judged speaker's own channel (`SmartTurnVerifier(audio="own_channel")`): the channel
of the last speaker to take the floor reaches the model, cut where the streamed audio ends; a missing
or wrong stereo file is one line."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from adaptkit.errors import AdaptkitError
from adaptkit.turn.verifiers import SmartTurnVerifier

SR = 16000
UNITS = [{"speaker": "spk_0", "start": 0.0, "end": 1.0, "text": "Hello.", "label": "complete"},
         {"speaker": "spk_1", "start": 1.2, "end": 2.0, "text": "Hi, I", "label": "incomplete"},
         {"speaker": "spk_0", "start": 2.1, "end": 2.3, "text": "Mm.", "label": "backchannel"},
         {"speaker": "spk_1", "start": 2.5, "end": 3.0, "text": "need help.", "label": "complete"}]


class FakeSmartTurn:
    """Records the audio it is given."""

    def __init__(self):
        self.got: list[np.ndarray] = []

    def __call__(self, wave: np.ndarray) -> float:
        self.got.append(wave)
        return 0.25


@pytest.fixture
def call(tmp_path) -> tuple[dict, np.ndarray]:
    """A 3 s call: channel 0 a 440 Hz tone, channel 1 a 1 kHz tone at another level; mono is their sum."""
    t = np.arange(3 * SR) / SR
    channels = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 1000 * t)]).astype(np.float32)
    sf.write(tmp_path / "c.wav", channels.sum(0), SR, subtype="PCM_16")
    sf.write(tmp_path / "c.stereo.wav", channels.T, SR, subtype="PCM_16")
    written, _ = sf.read(tmp_path / "c.stereo.wav", dtype="float32")
    return {"id": "c", "audio": str(tmp_path / "c.wav"), "units": UNITS}, written.T


def test_the_judged_speakers_channel_reaches_the_model(call):
    record, channels = call
    fake = FakeSmartTurn()
    verifier = SmartTurnVerifier(fake, audio="own_channel")
    assert verifier.hears == "the judged speaker's own channel, last 8 s"
    verifier.reset(record)
    mono = np.zeros(3 * SR, np.float32)
    assert verifier(mono[: int(1.0 * SR)], 1.0) == 0.25  # spk_0 spoke last
    np.testing.assert_array_equal(fake.got[-1], channels[0, : SR])
    verifier(mono[: int(2.3 * SR)], 2.3)  # spk_1 holds the floor: spk_0's backchannel does not take it
    np.testing.assert_array_equal(fake.got[-1], channels[1, : int(2.3 * SR)])
    verifier(mono[: int(0.5 * SR)], 0.5)  # nobody has finished a unit yet: the model is not asked
    assert len(fake.got) == 2
    mixed = SmartTurnVerifier(fake)  # the mono mix, as the stream gives it
    mixed.reset(record)
    mixed(mono[: SR] + 1, 1.0)
    assert mixed.hears == "the mono mix, last 8 s" and np.all(fake.got[-1] == 1)


def test_a_missing_or_wrong_stereo_file_is_one_line(call, tmp_path):
    record, _ = call
    (tmp_path / "c.stereo.wav").unlink()
    verifier = SmartTurnVerifier(FakeSmartTurn(), audio="own_channel")
    with pytest.raises(AdaptkitError, match=r"^smart_turn_audio: own_channel needs .*c\.stereo\.wav \(adaptkit synth --stereo writes it\); or set smart_turn_audio: mono$"):
        verifier.reset(record)
    sf.write(tmp_path / "c.stereo.wav", np.zeros(SR, np.float32), SR)
    with pytest.raises(AdaptkitError, match=r"c\.stereo\.wav: expected 16 kHz audio with 2 channels \(one per speaker\), got 16000 Hz, 1 channels"):
        verifier.reset(record)
    with pytest.raises(AdaptkitError, match=r"smart_turn_audio: unknown audio 'left'"):
        SmartTurnVerifier(FakeSmartTurn(), audio="left")
