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
from adaptkit.models.base import Architecture, pad_features, scatter_audio
from adaptkit.models.tokenizer import add_special_tokens, chatml_prompt

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
    # no _tied_weights_keys: the LLM, a transformers model itself, declares (and ties) its own

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


# --- audio ---------------------------------------------------------------------------------

def encoder_type(model: nn.Module) -> str | None:
    """Model type of the encoder, None for a text-only composition."""
    return model.config.encoder["model_type"] if model.config.encoder else None


def _features(feature_extractor, wave) -> torch.Tensor:
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


def encode_audio(model: nn.Module, input_features: torch.Tensor, feature_attention_mask: torch.Tensor) -> list[torch.Tensor]:
    """Encoder outputs (before the projector), one (frames, d) tensor per sample."""
    kind, enc = encoder_type(model), model.encoder
    frames = feature_attention_mask.sum(dim=1)
    if kind == "whisper":
        # Whisper reads a fixed window of 2 x max_source_positions frames (30 s in real models)
        x = pad_features(input_features, feature_attention_mask, 2 * enc.config.max_source_positions)
        hidden = enc(input_features=x).last_hidden_state
    elif kind == "parakeet_encoder":
        hidden = enc(input_features=input_features.transpose(1, 2), attention_mask=feature_attention_mask).last_hidden_state
    else:
        hidden = enc(input_values=input_features[:, 0], attention_mask=feature_attention_mask).last_hidden_state
    lengths = _encoder_lengths(model, frames).tolist()
    return [hidden[i, : int(n)] for i, n in enumerate(lengths)]


def input_embeddings(model: nn.Module, input_ids: torch.Tensor, input_features: torch.Tensor | None = None,
                     feature_attention_mask: torch.Tensor | None = None, audio_embeds: torch.Tensor | None = None) -> torch.Tensor:
    """LLM input embeddings with the projected audio at the placeholders."""
    if audio_embeds is None and input_features is not None:
        audio_embeds = model.projector(encode_audio(model, input_features, feature_attention_mask))
    return scatter_audio(model.llm.get_input_embeddings()(input_ids), input_ids, model.config.audio_token_id, audio_embeds)


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


def build_tiny_model(tokenizer, tied: bool = False, seed: int = 0, vocab_size: int | None = None,
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
    add_special_tokens(tokenizer, [t for t in AUDIO_TOKENS if t not in tokenizer.get_vocab()])
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


class Composed(Architecture):
    """Any transformers audio encoder -> a projector -> any causal LM (`ComposedSpeechLM`)."""

    name = "composed"
    model_types = ("adaptkit_composed",)
    model_class_name = None  # the model knows its parts: ComposedSpeechLM.component_paths()

    def build_tiny(self, tokenizer, *, tied=False, seed=0, vocab_size=None, init_std=None, size="tiny", encoder="whisper",
                   llm="qwen2", projector=None, **parts) -> nn.Module:
        return build_tiny_model(tokenizer, tied, seed, vocab_size, init_std, size, encoder, llm or "qwen2", projector)

    def tiny_feature_extractor(self, encoder: str | None = "whisper", **parts):
        return tiny_feature_extractor(encoder)

    def load(self, name: str, dtype: torch.dtype = torch.float32):
        """Reload a saved composition (a merged checkpoint)."""
        from transformers import AutoFeatureExtractor, AutoTokenizer

        model = ComposedSpeechLM.from_pretrained(name, dtype=dtype)
        fe = AutoFeatureExtractor.from_pretrained(name) if model.encoder is not None else None
        return model, AutoTokenizer.from_pretrained(name), fe, None

    def features(self, feature_extractor, wave) -> torch.Tensor:
        return _features(feature_extractor, wave)

    def prompt_ids(self, tokenizer, n_audio: int, system: str = "") -> list[int]:
        return chatml_prompt(tokenizer, n_audio, system)

    def audio_token_count(self, num_frames: int, model: nn.Module | None = None) -> int:
        """Placeholders for `num_frames` encoder input frames (samples for wave encoders)."""
        if model is None or model.encoder is None:
            raise AdaptkitError("composed model: audio needs an encoder (model.encoder)")
        return model.projector.length(int(_encoder_lengths(model, torch.tensor([num_frames]))[0]))

    def audio_token_id(self, model: nn.Module) -> int:
        return model.config.audio_token_id

    def encode_audio(self, model, features, mask) -> list[torch.Tensor]:
        return encode_audio(model, features, mask)

    def projected_length(self, model: nn.Module, states: int) -> int:
        return model.projector.length(states)

    def project(self, model: nn.Module, states: list[torch.Tensor]) -> torch.Tensor:
        return model.projector(states)

    def llm_hidden(self, model, input_ids, attention_mask, audio_embeds) -> torch.Tensor:
        embeds = input_embeddings(model, input_ids, audio_embeds=audio_embeds)
        return model.llm.base_model(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False).last_hidden_state

    def output_layer(self, model: nn.Module) -> nn.Module:
        return model.llm.get_output_embeddings()

    def text_model(self, model: nn.Module) -> nn.Module:
        return model.llm

    def generate(self, model, input_ids, attention_mask, input_features=None, feature_attention_mask=None, **kwargs):
        """By the LLM from the embedded prompt."""
        embeds = input_embeddings(model, input_ids, input_features, feature_attention_mask)
        return model.llm.generate(input_ids=input_ids, inputs_embeds=embeds, attention_mask=attention_mask, **kwargs)


def register() -> None:
    """Make `AutoConfig`/`AutoModel` know the composed model type (for from_pretrained by folder)."""
    try:
        AutoConfig.register(ComposedConfig.model_type, ComposedConfig)
        AutoModel.register(ComposedConfig, ComposedSpeechLM)
    except ValueError:  # already registered
        pass


register()
