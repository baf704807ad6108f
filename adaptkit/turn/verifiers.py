"""Turn models a cascade asks "end of turn or not?": a 3-tag Speech-LLM on the audio, an end-of-turn
LM on the words so far, or Smart Turn v3.2 (the off-the-shelf baseline)."""

from __future__ import annotations

import numpy as np
import torch

from adaptkit.devices import model_place
from adaptkit.tasks.turn_tags import TAGS

SAMPLE_RATE = 16000


class TagVerifier:
    """P(end of turn) from a 3-tag Speech-LLM: 1 - P(<INCOMPLETE>) among the three tags at the answer
    position (after COMPLETE, and after a backchannel, the other speaker talks next: a Gap).

    `task_model` is an `adaptkit.eval.run.TaskModel` (a trained adapter, recipe or merged checkpoint); the
    audio is the last `context` seconds before the silence, as the tags were trained (synth's
    tag_context)."""

    def __init__(self, task_model, context: float = 8.0) -> None:
        self.task_model, self.context = task_model, context
        self.arch = task_model.loaded.architecture
        tok = task_model.loaded.tokenizer
        self.tag_ids = tok.convert_tokens_to_ids([TAGS["complete"], TAGS["incomplete"], TAGS["backchannel"]])
        task_model.loaded.model.eval()

    def reset(self, record: dict) -> None:
        """Nothing to keep between conversations."""

    @torch.no_grad()
    def __call__(self, audio: np.ndarray, end: float) -> float:
        if len(audio) < SAMPLE_RATE // 10:  # nothing said yet
            return 0.0
        arch, loaded = self.arch, self.task_model.loaded
        model, tok = loaded.model, loaded.tokenizer
        device, dtype = model_place(model)  # the inputs go where the model is, the features in its dtype
        feats = arch.features(loaded.feature_extractor, audio[-int(self.context * SAMPLE_RATE):])
        ids = arch.prompt_ids(tok, arch.audio_token_count(feats.shape[-1], model), self.task_model.prompt)
        frames = torch.ones(1, feats.shape[-1], dtype=torch.long, device=device)
        states = arch.encode_audio(model, feats[None].to(device=device, dtype=dtype), frames)
        hidden = arch.llm_hidden(model, torch.tensor([ids], device=device), torch.ones(1, len(ids), dtype=torch.long, device=device),
                                 arch.project(model, states))
        probs = torch.softmax(arch.logits(model, hidden[:, -1]).float()[0, self.tag_ids], dim=-1)
        return float(1.0 - probs[1])


class EndOfTurnVerifier:
    """P(<|im_end|>) of a text end-of-turn model on the words spoken before the silence.

    The words are the reference units that ended by then (an oracle ASR: it isolates the turn
    model from recognition errors); the last speaker's message is left open, the others are
    closed, backchannels are left out as in turn_end.jsonl. Each call scores the conversation so far
    through `EndOfTurnScorer.score`, which runs only the tokens added since the last call on the KV
    cache (none when no word ended since: most chunks of the every-chunk system), with the
    probability of a full recomputation."""

    def __init__(self, task_model) -> None:
        from adaptkit.end_of_turn import EndOfTurnScorer

        loaded = task_model.loaded
        self.scorer = EndOfTurnScorer(loaded.architecture.text_model(loaded.model), loaded.tokenizer)
        self.units: list[dict] = []
        self.sep = " "

    def reset(self, record: dict) -> None:
        """Take the conversation's units (from its synth JSON record)."""
        from adaptkit.synth.templates import SCRIPTS

        self.units = [u for u in record.get("units", []) if u.get("label") != "backchannel"]
        script = SCRIPTS.get(record.get("language"))
        self.sep = " " if script is None or script.spaced else ""
        self.scorer.reset()

    def __call__(self, audio: np.ndarray, end: float) -> float:
        from adaptkit.synth.manifests import chat_messages

        done = [(u["speaker"], u["text"]) for u in self.units if u["end"] <= end + 0.05]
        return self.scorer.score(chat_messages(done, self.sep)) if done else 0.0


class SmartTurnVerifier:
    """Smart Turn v3.2 on the last 8 s before the silence (its own input window)."""

    def __init__(self, smart_turn=None) -> None:
        from adaptkit.turn.smart_turn import SmartTurn

        self.model = smart_turn or SmartTurn()

    def reset(self, record: dict) -> None:
        """Nothing to keep between conversations."""

    def __call__(self, audio: np.ndarray, end: float) -> float:
        if len(audio) < SAMPLE_RATE // 10:
            return 0.0
        return float(self.model(audio.astype(np.float32)))
