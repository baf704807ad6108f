"""A new architecture joins through the public interface alone: this file defines a toy model
(conv encoder -> linear projector -> tiny Qwen2), registers it, and trains it from a recipe;
nothing in adaptkit is edited."""

from __future__ import annotations

import json

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel, Qwen2Config, Qwen2ForCausalLM, WhisperFeatureExtractor

from adaptkit.models import ARCHITECTURES, register
from adaptkit.models.base import Architecture, scatter_audio
from adaptkit.models.tokenizer import chatml_prompt
from adaptkit.recipe import Recipe
from adaptkit.train import run


class ToyConfig(PretrainedConfig):
    model_type = "toy_speech"

    def __init__(self, llm: dict | None = None, audio_token_id: int = 0, mels: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.llm, self.audio_token_id, self.mels = llm or {}, audio_token_id, mels


class ToySpeech(PreTrainedModel):
    config_class = ToyConfig

    def __init__(self, config: ToyConfig):
        super().__init__(config)
        self.encoder = nn.Conv1d(config.mels, 32, kernel_size=4, stride=4)
        self.projector = nn.Linear(32, config.llm["hidden_size"])
        self.llm = Qwen2ForCausalLM(Qwen2Config(**config.llm))
        self.post_init()  # what transformers asks of every PreTrainedModel (transformers 5 needs it to load)

    def get_input_embeddings(self):
        return self.llm.get_input_embeddings()

    def get_output_embeddings(self):
        return self.llm.get_output_embeddings()


class Toy(Architecture):
    name = "toy_speech"
    model_types = ("toy_speech",)
    model_class_name = "ToySpeech"
    components = {"encoder": "encoder", "projector": "projector", "llm": "llm.model",
                  "embeddings": "llm.model.embed_tokens", "lm_head": "llm.lm_head"}

    def build_tiny(self, tokenizer, *, tied=False, seed=0, vocab_size=None, init_std=None, size="tiny", **parts):
        llm = dict(vocab_size=len(tokenizer) + 64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, initializer_range=0.2, tie_word_embeddings=tied)
        torch.manual_seed(seed)
        return ToySpeech(ToyConfig(llm=llm, audio_token_id=tokenizer.convert_tokens_to_ids("<|audio_pad|>")))

    def tiny_feature_extractor(self, **parts):
        return WhisperFeatureExtractor(feature_size=16)

    def load(self, name, dtype):
        raise NotImplementedError

    def features(self, feature_extractor, wave):
        out = feature_extractor(wave, sampling_rate=16000, return_attention_mask=True, padding="longest", return_tensors="pt")
        return out["input_features"][0, :, : int(out["attention_mask"][0].sum())]

    def prompt_ids(self, tokenizer, n_audio, system=""):
        return chatml_prompt(tokenizer, n_audio, system)

    def audio_token_count(self, num_frames, model=None):
        return num_frames // 4

    def audio_token_id(self, model):
        return model.config.audio_token_id

    def encode_audio(self, model, features, mask):
        hidden = model.encoder(features).transpose(1, 2)
        return [hidden[i, : int(n) // 4] for i, n in enumerate(mask.sum(dim=1).tolist())]

    def project(self, model, states):
        return model.projector(torch.cat(states))

    def llm_hidden(self, model, input_ids, attention_mask, audio_embeds):
        embeds = scatter_audio(model.get_input_embeddings()(input_ids), input_ids, model.config.audio_token_id, audio_embeds)
        return model.llm.model(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state

    def output_layer(self, model):
        return model.llm.lm_head

    def text_model(self, model):
        return model.llm

    def generate(self, model, input_ids, attention_mask, input_features=None, feature_attention_mask=None, **kwargs):
        raise NotImplementedError


def test_a_registered_toy_architecture_trains_from_a_recipe(short_calls, tmp_path):
    register(Toy())
    try:
        recipe = Recipe.parse({
            "model": {"tiny": "toy_speech"}, "tokens": {"tokens": ["<|spk_0|>", "<|spk_1|>"]},
            "freeze": {"train": ["projector", {"tokens": "added"}]}, "task": "speaker_asr", "language": "en",
            "data": {"train": str(short_calls["train"]), "dev": str(short_calls["test_id"])},
            "train": {"lr": 1e-2, "max_steps": 30, "batch_size": 8, "eval_every": 0, "save_every": 0},
            "output_dir": str(tmp_path / "run")})
        summary = run(recipe)
        losses = [json.loads(x)["loss"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
        assert summary.steps == 30 and losses[-1] < losses[0]
        merged = ToySpeech.from_pretrained(tmp_path / "run" / "merged")  # the class's own from_pretrained
        trained = {k: v for k, v in merged.state_dict().items() if k.startswith("projector.")}
        fresh = Toy().build_tiny(recipe_tokenizer(), seed=0).state_dict()  # load() builds tiny models with seed 0
        assert any(not torch.equal(v, fresh[k]) for k, v in trained.items())  # the projector trained
        assert torch.equal(merged.state_dict()["encoder.weight"], fresh["encoder.weight"])  # the encoder did not
    finally:
        ARCHITECTURES.pop("toy_speech", None)


def recipe_tokenizer():
    from adaptkit.models.tokenizer import tiny_tokenizer

    return tiny_tokenizer()
