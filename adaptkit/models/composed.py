"""Composed Speech-LLMs: any transformers audio encoder -> a projector -> any causal LM.

Tree: `encoder` (a Whisper encoder, Wav2Vec2/HuBERT/WavLM, or Parakeet's FastConformer),
`projector` (see projectors.py), `llm` (any `AutoModelForCausalLM`). Without an encoder the model
is a plain causal LM in the same frame, for text-only tasks such as end-of-turn probability.

Real parts load by name (`compose("openai/whisper-medium", "Qwen/Qwen2.5-0.5B", ...)`); a saved
composition reloads with `ComposedSpeechLM.from_pretrained`. Tiny parts are built from the real
config classes, offline.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel

from adaptkit.errors import AdaptkitError
from adaptkit.models import projectors
from adaptkit.models.qwen3_asr import prompt_ids  # noqa: F401  (the same ChatML prompt with audio placeholders)

ARCH = "composed"
AUDIO_TOKENS = ("<|audio_start|>", "<|audio_pad|>", "<|audio_end|>")
AUDIO_TOKEN = AUDIO_TOKENS[1]
INPUTS = {"whisper": "mel", "parakeet_encoder": "mel", "wav2vec2": "wave", "hubert": "wave", "wavlm": "wave"}
"""Encoder model types and what they read: log-mel frames or the raw waveform."""
INIT_STD = 0.2  # as for tiny Qwen3-ASR: a frozen random lm_head at 0.02 cannot move the loss


class ComposedConfig(PretrainedConfig):
    """Configs of the encoder (None: text only) and the LLM as dicts, and the projector's shape."""

    model_type = "adaptkit_composed"

    def __init__(self, encoder: dict | None = None, llm: dict | None = None, projector: str = "linear", stack: int = 4,
                 projector_layers: int = 2, projector_heads: int = 8, audio_token_id: int | None = None, **kwargs) -> None:
        self.encoder, self.llm = encoder, llm
        self.projector, self.stack = projector, stack
        self.projector_layers, self.projector_heads = projector_layers, projector_heads
        self.audio_token_id = audio_token_id
        super().__init__(**kwargs)


def _config(d: dict) -> PretrainedConfig:
    d = dict(d)
    return AutoConfig.for_model(d.pop("model_type"), **d)


def _encoder_from_config(config: PretrainedConfig) -> nn.Module:
    if config.model_type == "whisper":
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        return WhisperEncoder(config)
    return AutoModel.from_config(config)


def _width(config: PretrainedConfig) -> int:
    return getattr(config, "d_model", None) or config.hidden_size


class ComposedSpeechLM(PreTrainedModel):
    """encoder -> projector -> causal LM; the parts may be given ready-made (loaded by name)."""

    config_class = ComposedConfig
    base_model_prefix = "composed"
    _tied_weights_keys = ["llm.lm_head.weight"]

    def __init__(self, config: ComposedConfig, encoder: nn.Module | None = None, llm: nn.Module | None = None) -> None:
        super().__init__(config)
        llm_config = _config(config.llm)
        self.llm = llm if llm is not None else AutoModelForCausalLM.from_config(llm_config)
        self.encoder = self.projector = None
        if config.encoder is not None:
            enc_config = _config(config.encoder)
            if enc_config.model_type not in INPUTS:
                raise AdaptkitError(f"model.encoder: unsupported encoder type {enc_config.model_type!r}; supported: {', '.join(INPUTS)}")
            self.encoder = encoder if encoder is not None else _encoder_from_config(enc_config)
            self.projector = projectors.build(config.projector, _width(enc_config), llm_config.hidden_size, config.stack,
                                              config.projector_layers, config.projector_heads)
        self.config.tie_word_embeddings = bool(getattr(llm_config, "tie_word_embeddings", False))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:  # the parts initialise themselves
        pass

    def get_input_embeddings(self) -> nn.Module:
        return self.llm.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.llm.get_output_embeddings()

    def component_paths(self) -> dict[str, str | list[str]]:
        """Where encoder, projector, LLM, embeddings and lm_head sit (read by adaptkit.freeze)."""
        names = {id(m): n for n, m in self.named_modules()}
        head = self.llm.get_output_embeddings()
        return {
            "encoder": "encoder" if self.encoder is not None else "",
            "projector": ["projector"] if self.projector is not None else [],
            "llm": f"llm.{self.llm.base_model_prefix}",
            "embeddings": names[id(self.llm.get_input_embeddings())],
            "lm_head": names[id(head)] if head is not None else None,
        }

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, input_features: torch.Tensor | None = None,
                feature_attention_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None, **kwargs):
        """Causal-LM outputs with the projected audio at the placeholders (loss when `labels` are given)."""
        embeds = input_embeddings(self, input_ids, input_features, feature_attention_mask)
        return self.llm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels, **kwargs)


# --- the family interface (see adaptkit/models/__init__.py) ---------------------------------

def encoder_type(model: nn.Module) -> str | None:
    """Model type of the encoder, None for a text-only composition."""
    return model.config.encoder["model_type"] if model.config.encoder else None


def features(feature_extractor, wave) -> torch.Tensor:
    """Encoder input of one 16 kHz waveform, unpadded: (n_mels, frames), or (1, samples) for wave encoders."""
    kind = type(feature_extractor).__name__
    out = feature_extractor(wave, sampling_rate=feature_extractor.sampling_rate, return_attention_mask=True,
                            return_tensors="pt", **({"padding": "longest", "truncation": False} if kind == "WhisperFeatureExtractor" else {}))
    if "input_values" in out:
        return out["input_values"][:1]
    x = out["input_features"][0]
    if kind != "WhisperFeatureExtractor":  # Parakeet: (frames, n_mels)
        x = x.T
    return x[:, : int(out["attention_mask"][0].sum())] if "attention_mask" in out else x


def _encoder_lengths(model: nn.Module, frames: torch.Tensor) -> torch.Tensor:
    kind, enc = encoder_type(model), model.encoder
    if kind == "whisper":
        return (frames - 1) // 2 + 1
    if kind == "parakeet_encoder":
        return enc._get_subsampling_output_length(frames)
    return enc._get_feat_extract_output_lengths(frames)


def projected_length(model: nn.Module, states: int) -> int:
    """Rows the projector makes of `states` encoder states."""
    return model.projector.length(states)


def audio_token_count(num_frames: int, model: nn.Module | None = None) -> int:
    """Audio placeholders for `num_frames` encoder input frames (samples for wave encoders)."""
    if model is None or model.encoder is None:
        raise AdaptkitError("composed model: audio needs an encoder (model.encoder)")
    n = int(_encoder_lengths(model, torch.tensor([num_frames]))[0])
    return model.projector.length(n)


def encode_audio(model: nn.Module, input_features: torch.Tensor, feature_attention_mask: torch.Tensor) -> list[torch.Tensor]:
    """Encoder outputs (before the projector), one (frames, d) tensor per sample."""
    kind, enc = encoder_type(model), model.encoder
    frames = feature_attention_mask.sum(dim=1)
    if kind == "whisper":
        # Whisper's encoder reads exactly 2 x max_source_positions frames (30 s for real models);
        # fill the rest with each sample's floor, the value its feature extractor gives silence.
        expected = 2 * enc.config.max_source_positions
        if input_features.shape[-1] > expected:
            raise AdaptkitError(f"audio of {input_features.shape[-1]} frames is longer than the Whisper encoder's {expected}")
        x = input_features.new_zeros(input_features.shape[0], input_features.shape[1], expected)
        for i, n in enumerate(frames.tolist()):
            x[i, :, :n] = input_features[i, :, :n]
            x[i, :, n:] = input_features[i, :, :n].min()
        hidden = enc(input_features=x).last_hidden_state
    elif kind == "parakeet_encoder":
        hidden = enc(input_features=input_features.transpose(1, 2), attention_mask=feature_attention_mask).last_hidden_state
    else:
        hidden = enc(input_values=input_features[:, 0], attention_mask=feature_attention_mask).last_hidden_state
    lengths = _encoder_lengths(model, frames).tolist()
    return [hidden[i, : int(n)] for i, n in enumerate(lengths)]


def project(model: nn.Module, states: list[torch.Tensor]) -> torch.Tensor:
    """The projector on per-sample encoder states; rows of all samples concatenated."""
    return model.projector(states)


def input_embeddings(model: nn.Module, input_ids: torch.Tensor, input_features: torch.Tensor | None = None,
                     feature_attention_mask: torch.Tensor | None = None, audio_embeds: torch.Tensor | None = None) -> torch.Tensor:
    """LLM input embeddings with the projected audio at the placeholders."""
    embeds = model.llm.get_input_embeddings()(input_ids)
    if audio_embeds is None and input_features is not None:
        audio_embeds = project(model, encode_audio(model, input_features, feature_attention_mask))
    if audio_embeds is not None:
        mask = (input_ids == model.config.audio_token_id).unsqueeze(-1).expand_as(embeds)
        embeds = embeds.masked_scatter(mask, audio_embeds.to(embeds.dtype))
    return embeds


def llm_hidden(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, audio_embeds: torch.Tensor | None) -> torch.Tensor:
    """Last hidden states of the LLM with the audio embeddings placed at the placeholders (none: text only)."""
    embeds = input_embeddings(model, input_ids, audio_embeds=audio_embeds)
    return model.llm.base_model(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False).last_hidden_state


def generate(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, input_features: torch.Tensor | None = None,
             feature_attention_mask: torch.Tensor | None = None, **kwargs):
    """Greedy generation by the LLM from the embedded prompt; sequences start with `input_ids`."""
    embeds = input_embeddings(model, input_ids, input_features, feature_attention_mask)
    return model.llm.generate(input_ids=input_ids, inputs_embeds=embeds, attention_mask=attention_mask, **kwargs)


def text_model(model: nn.Module) -> nn.Module:
    """The causal LM that reads text alone (for the end-of-turn scorer)."""
    return model.llm


def audio_token_id(model: nn.Module) -> int:
    """Id of the audio placeholder token."""
    return model.config.audio_token_id


def output_layer(model: nn.Module) -> nn.Module:
    """The lm_head (possibly wrapped by peft)."""
    return model.llm.get_output_embeddings()


def forward(model: nn.Module, batch: dict[str, torch.Tensor]):
    """Forward one batch (see ComposedSpeechLM.forward)."""
    return model(**batch)


# --- building ------------------------------------------------------------------------------

TINY_ENCODERS = {
    "whisper": dict(num_mel_bins=80, d_model=64, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128,
                    decoder_layers=1, decoder_attention_heads=4, decoder_ffn_dim=128, max_source_positions=750),
    "wav2vec2": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                     conv_dim=(32,) * 7, feat_extract_norm="layer", do_stable_layer_norm=True,
                     num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4),
    "parakeet_encoder": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                             subsampling_conv_channels=32, dropout=0.0, layerdrop=0.0, activation_dropout=0.0,
                             attention_dropout=0.0),
}
"""Tiny encoder configs (random weights): about 0.1-0.2 M parameters each."""


def tiny_feature_extractor(encoder: str | None = "whisper"):
    """The front end of a tiny encoder of type `encoder`, built offline."""
    from transformers import ParakeetFeatureExtractor, Wav2Vec2FeatureExtractor, WhisperFeatureExtractor

    if encoder is None:
        return None
    if encoder == "whisper":
        return WhisperFeatureExtractor(feature_size=80, sampling_rate=16000)
    if encoder == "parakeet_encoder":
        return ParakeetFeatureExtractor()
    return Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, do_normalize=True, return_attention_mask=True)


def build_tiny(arch: str, tokenizer, tied: bool = False, seed: int = 0, vocab_size: int | None = None,
               init_std: float | None = None, size: str = "tiny", encoder: str | None = "whisper", llm: str = "qwen2",
               projector: dict | None = None) -> nn.Module:
    """A random composition: a tiny `encoder` (see TINY_ENCODERS; None for text only), a projector and
    a tiny causal LM of model type `llm` (qwen2, qwen3, llama, ...; hidden 128 x 2 layers)."""
    if size != "tiny":
        raise AdaptkitError(f"model.size: composed models come in size 'tiny' only, not {size!r}")
    if encoder is not None and encoder not in TINY_ENCODERS:
        raise AdaptkitError(f"model.encoder: no tiny {encoder!r} encoder; use one of {', '.join(TINY_ENCODERS)}")
    std = init_std or INIT_STD
    text = dict(vocab_size=vocab_size or len(tokenizer) + 64, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=4096, tie_word_embeddings=tied,
                initializer_range=std, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    try:
        llm_config = AutoConfig.for_model(llm, **text)
    except ValueError as err:
        raise AdaptkitError(f"model.llm: unknown LLM type {llm!r} ({err})")
    enc_config = AutoConfig.for_model(encoder, **TINY_ENCODERS[encoder]) if encoder else None
    config = _composed_config(enc_config, llm_config, projector or {}, tokenizer)
    torch.manual_seed(seed)
    return ComposedSpeechLM(config).float()


def _composed_config(enc_config, llm_config, projector: dict, tokenizer) -> ComposedConfig:
    unknown = set(projector) - {"type", "stack", "layers", "heads"}
    if unknown:
        raise AdaptkitError(f"model.projector: unknown key(s) {', '.join(sorted(unknown))}; use type, stack, layers, heads")
    return ComposedConfig(
        encoder=enc_config.to_dict() if enc_config is not None else None, llm=llm_config.to_dict(),
        projector=projector.get("type", "linear"), stack=projector.get("stack", 4), projector_layers=projector.get("layers", 2),
        projector_heads=projector.get("heads", 8), audio_token_id=tokenizer.convert_tokens_to_ids(AUDIO_TOKEN),
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )


def compose(encoder: str | None, llm: str, projector: dict | None = None, dtype: torch.dtype = torch.float32):
    """Join real checkpoints by hub id or path. Returns (model, tokenizer, feature extractor).

    The audio placeholder tokens are added to the LLM's tokenizer (and its embedding grown only when
    it has no spare rows); the projector starts random.
    """
    from transformers import AutoFeatureExtractor, AutoTokenizer

    from adaptkit.models import loading

    with loading("llm", llm):
        tokenizer = AutoTokenizer.from_pretrained(llm)
        lm = AutoModelForCausalLM.from_pretrained(llm, dtype=dtype)
    tokenizer.add_special_tokens({"additional_special_tokens": [t for t in AUDIO_TOKENS if t not in tokenizer.get_vocab()]},
                                 replace_additional_special_tokens=False)
    if len(tokenizer) > lm.get_input_embeddings().weight.shape[0]:
        lm.resize_token_embeddings(len(tokenizer))
    enc, fe, enc_config = None, None, None
    if encoder is not None:
        with loading("encoder", encoder):
            loaded = AutoModel.from_pretrained(encoder, dtype=dtype)
            fe = AutoFeatureExtractor.from_pretrained(encoder)
        enc = loaded.get_encoder() if hasattr(loaded, "get_encoder") else getattr(loaded, "encoder", loaded)
        enc_config = enc.config
    config = _composed_config(enc_config, lm.config, projector or {}, tokenizer)
    model = ComposedSpeechLM(config, encoder=enc, llm=lm)
    if model.projector is not None:
        model.projector.to(dtype)
    return model, tokenizer, fe


def load_pretrained(arch: str, name: str, dtype: torch.dtype = torch.float32):
    """Reload a saved composition (a merged checkpoint). Returns (model, tokenizer, feature extractor, None)."""
    from transformers import AutoFeatureExtractor, AutoTokenizer

    model = ComposedSpeechLM.from_pretrained(name, dtype=dtype)
    fe = AutoFeatureExtractor.from_pretrained(name) if model.encoder is not None else None
    return model, AutoTokenizer.from_pretrained(name), fe, None


def example_batch(arch: str, model: nn.Module, tokenizer, batch_size: int = 2, seed: int = 0,
                  answers: list[str] | None = None, num_frames: int = 200) -> dict[str, torch.Tensor]:
    """A random batch in the ChatML prompt layout, with labels on the answer."""
    g = torch.Generator().manual_seed(seed)
    kind = encoder_type(model)
    rows_in = 1 if kind is not None and INPUTS[kind] == "wave" else model.encoder.config.num_mel_bins if kind else 0
    frames = num_frames * 160 if rows_in == 1 else num_frames
    n_audio = audio_token_count(frames, model) if kind else 0
    prompt = prompt_ids(tokenizer, n_audio) if kind else tokenizer("<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n")["input_ids"]
    answers = answers or ["hello order"]
    ids = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    rows = [prompt + ids(answers[i % len(answers)]) + [tokenizer.eos_token_id] for i in range(batch_size)]
    width = max(len(r) for r in rows)
    input_ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows])
    labels = torch.tensor([[-100] * len(prompt) + r[len(prompt):] + [-100] * (width - len(r)) for r in rows])
    batch = {"input_ids": input_ids, "attention_mask": (labels != -100).long() | (torch.arange(width) < len(prompt)).long(),
             "labels": labels}
    if kind:
        batch["input_features"] = torch.randn(batch_size, rows_in, frames, generator=g)
        batch["feature_attention_mask"] = torch.ones(batch_size, frames, dtype=torch.long)
    return batch


def register() -> None:
    """Make `AutoConfig`/`AutoModel` know the composed model type (for from_pretrained by folder)."""
    try:
        AutoConfig.register(ComposedConfig.model_type, ComposedConfig)
        AutoModel.register(ComposedConfig, ComposedSpeechLM)
    except ValueError:  # already registered
        pass


register()
