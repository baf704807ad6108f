"""Qwen3-ASR's two on-disk layouts and the mapping between them, as plain data (no model classes).

Both layouts have `model_type: qwen3_asr` and the class name `Qwen3ASRForConditionalGeneration`:

- qwen_asr's (the original `Qwen/Qwen3-ASR-1.7B`): `config.json` nests everything under
  `thinker_config: {audio_config, text_config, audio_token_id, ...}`; the weights are
  `thinker.audio_tower.*` (the projector inside it as `proj1`/`proj2`), `thinker.model.*`,
  `thinker.lm_head.*`; a WhisperFeatureExtractor; qwen_asr's processor and chat template.
- transformers 5's native one (`Qwen/Qwen3-ASR-1.7B-hf`): a flat config (`audio_config` of
  model_type `qwen3_asr_encoder`, `text_config` of model_type `qwen3`), weights `model.audio_tower.*`,
  `model.multi_modal_projector.linear_1/linear_2`, `model.language_model.*`, `lm_head.*`; a
  `Qwen3ASRFeatureExtractor` and `Qwen3ASRProcessor` with an ASR chat template.

The weight mapping and the config cleaning follow transformers' own conversion script,
`src/transformers/models/qwen3_asr/convert_qwen3_asr_to_hf.py` (huggingface/transformers), the
reference for the qwen_asr -> native direction; the reverse direction inverts it. Everything here
works on JSON dictionaries and key names, so it runs on either software stack.
"""

from __future__ import annotations

import copy

from adaptkit.errors import AdaptkitError
from adaptkit.models.hub_checkpoint import CHAT_TEMPLATE as QWEN_ASR_CHAT_TEMPLATE

QWEN_ASR = "qwen_asr"
NATIVE = "native"
LAYOUTS = (NATIVE, QWEN_ASR)

TO_NATIVE = (  # first matching prefix wins (the reference's mapping, applied as prefixes)
    ("thinker.model.", "model.language_model."),
    ("thinker.lm_head.", "lm_head."),
    ("thinker.audio_tower.proj1.", "model.multi_modal_projector.linear_1."),
    ("thinker.audio_tower.proj2.", "model.multi_modal_projector.linear_2."),
    ("thinker.", "model."),
)
"""Weight-name prefixes, qwen_asr -> native."""
TO_QWEN_ASR = tuple(sorted(((new, old) for old, new in TO_NATIVE), key=lambda rule: -len(rule[0])))
"""Weight-name prefixes, native -> qwen_asr (the inverse rules, most specific first)."""
LM_HEAD = {QWEN_ASR: "thinker.lm_head.weight", NATIVE: "lm_head.weight"}
"""The output layer's weight in each layout (absent from the file when tied to the embeddings)."""

ENCODER_HEADS = ("encoder_attention_heads", "num_attention_heads")
"""The audio encoder's head count: qwen_asr's name, the reference's native name."""
NATIVE_AUDIO_POSITIONS = 13
"""The native encoder's sinusoid table: chunks of n_window * 2 = 100 mel frames give 13 positions."""
_LEGACY = (  # transformers 4's PretrainedConfig bookkeeping and generation defaults, not model fields
    "_name_or_path", "architectures", "dtype", "torch_dtype", "model_type", "transformers_version", "use_bfloat16",
    "add_cross_attention", "chunk_size_feed_forward", "cross_attention_hidden_size", "decoder_start_token_id",
    "finetuning_task", "id2label", "label2id", "is_decoder", "is_encoder_decoder", "output_attentions",
    "output_hidden_states", "prefix", "problem_type", "pruned_heads", "return_dict", "sep_token_id",
    "task_specific_params", "tf_legacy_loss", "tie_encoder_decoder", "tokenizer_class", "torchscript",
    "bad_words_ids", "begin_suppress_tokens", "diversity_penalty", "do_sample", "early_stopping",
    "encoder_no_repeat_ngram_size", "exponential_decay_length_penalty", "forced_bos_token_id", "forced_eos_token_id",
    "length_penalty", "max_length", "min_length", "no_repeat_ngram_size", "num_beam_groups", "num_beams",
    "num_return_sequences", "output_scores", "remove_invalid_values", "repetition_penalty", "return_dict_in_generate",
    "suppress_tokens", "temperature", "top_k", "top_p", "typical_p",
)
_AUDIO_DROPPED = ("max_source_positions", "conv_chunksize", "num_hidden_layers", "pad_token_id", "bos_token_id",
                  "eos_token_id", "tie_word_embeddings")
"""Audio fields the native encoder has no use for (restored from the record on the way back)."""
_MOE = ("decoder_sparse_step", "moe_intermediate_size", "num_experts_per_tok", "num_experts", "norm_topk_prob",
        "output_router_logits", "router_aux_loss_coef", "mlp_only_layers")
_MROPE = ("mrope_section", "interleaved", "mrope_interleaved", "type")
"""qwen_asr's multimodal-rope fields: its thinker feeds three identical position rows for audio-only
prompts, which is the plain 1-D rope the native Qwen3 uses."""
_NATIVE_ONLY_TEXT = ("layer_types", "max_window_layers", "sliding_window", "use_sliding_window", "bos_token_id")
PUBLISHED_MROPE = {"rope_type": "default", "mrope_section": [24, 20, 20], "interleaved": True, "mrope_interleaved": True}
"""The published checkpoints' rope_scaling (head_dim 128), used when no record of the original exists."""
AUDIO_TOKENS = {"audio_token": "<|audio_pad|>", "audio_bos_token": "<|audio_start|>", "audio_eos_token": "<|audio_end|>"}
"""The tokenizer attributes transformers' Qwen3ASRProcessor reads in its __init__."""


def rename(key: str, rules: tuple[tuple[str, str], ...], where: str) -> str:
    """`key` under the first rule whose prefix it has; a key no rule knows is refused."""
    for old, new in rules:
        if key.startswith(old):
            return new + key[len(old):]
    raise AdaptkitError(f"{where}: {key}: not a Qwen3-ASR weight of this layout (expected {', '.join(o for o, _ in rules)}*)")


def detect(config: dict, where: str = "config.json") -> str:
    """The layout of a Qwen3-ASR `config.json` (parsed); anything else is refused in one line."""
    if config.get("model_type") != "qwen3_asr":
        raise AdaptkitError(f"{where}: model_type: {config.get('model_type')!r}, not a Qwen3-ASR (qwen3_asr) checkpoint")
    thinker = config.get("thinker_config")
    if isinstance(thinker, dict):
        if "classify_num" in thinker:
            raise AdaptkitError(f"{where}: thinker_config.classify_num: a Qwen3 forced aligner; only the ASR model converts")
        if not isinstance(thinker.get("audio_config"), dict) or not isinstance(thinker.get("text_config"), dict):
            raise AdaptkitError(f"{where}: thinker_config: has no audio_config and text_config; neither layout")
        return QWEN_ASR
    if isinstance(config.get("audio_config"), dict) and isinstance(config.get("text_config"), dict):
        if "ForTokenClassification" in " ".join(config.get("architectures") or []) or "num_labels" in config:
            raise AdaptkitError(f"{where}: architectures: a Qwen3 forced aligner; only the ASR model converts")
        return NATIVE
    raise AdaptkitError(f"{where}: thinker_config: missing, and no top-level audio_config/text_config: "
                        "neither qwen_asr's layout nor transformers' native one")


REQUIRED = {
    "audio_config": ("num_mel_bins", "d_model", "encoder_layers", "encoder_attention_heads", "encoder_ffn_dim",
                     "n_window", "n_window_infer", "output_dim", "downsample_hidden_size"),
    "text_config": ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                    "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta"),
}
"""The fields of qwen_asr's thinker that must be written out in both layouts: the two stacks'
classes default them differently (n_window 100 against 50, the sizes, the rope base), so a missing
one would mean another model on the other side."""


def require_fields(config: dict, where: str = "config.json") -> dict:
    """qwen_asr's `config` (returned) has every field in `REQUIRED`; a missing one is refused."""
    for section, keys in REQUIRED.items():
        for key in keys:
            if key not in config["thinker_config"][section]:
                raise AdaptkitError(f"{where}: thinker_config.{section}.{key}: missing; the two layouts' defaults differ")
    return config


def _strip(section: dict, keys) -> dict:
    return {k: v for k, v in section.items() if k not in set(keys)}


def _audio_to_native(audio: dict) -> dict:
    out = _strip(audio, (*_LEGACY, *_AUDIO_DROPPED))
    if ENCODER_HEADS[0] in out:
        out[ENCODER_HEADS[1]] = out.pop(ENCODER_HEADS[0])
    out.setdefault("num_key_value_heads", out.get(ENCODER_HEADS[1]))  # the encoder has no GQA
    out["max_position_embeddings"] = NATIVE_AUDIO_POSITIONS
    out["model_type"] = "qwen3_asr_encoder"
    return out


def _text_to_native(text: dict, tied: bool) -> dict:
    out = _strip(text, (*_LEGACY, *_MOE, "rope_scaling", "rope_theta"))
    rope = {k: v for k, v in (text.get("rope_scaling") or {}).items() if k not in _MROPE}
    rope.setdefault("rope_type", "default")
    out["rope_parameters"] = {**rope, "rope_theta": text["rope_theta"]}
    out["tie_word_embeddings"] = tied
    out["model_type"] = "qwen3"
    return out


def config_to_native(config: dict, tied: bool, where: str = "config.json") -> dict:
    """qwen_asr's config.json -> the native one: thinker_config flattened, the audio heads renamed,
    the encoder's 13 positions, the mrope fields out of the rope, transformers 4 bookkeeping out.
    `tied`: whether the checkpoint ties lm_head to the embeddings (its weights file has no lm_head)."""
    thinker = require_fields(config, where)["thinker_config"]
    out = _strip(config, ("thinker_config", "support_languages", "transformers_version", "torch_dtype"))
    out["audio_config"] = _audio_to_native(thinker["audio_config"])
    out["text_config"] = _text_to_native(thinker["text_config"], tied)
    for key in ("audio_token_id", "initializer_range"):
        if key in thinker:
            out[key] = thinker[key]
    out["tie_word_embeddings"] = tied
    out["architectures"] = ["Qwen3ASRForConditionalGeneration"]
    return out


def _audio_to_qwen_asr(audio: dict) -> dict:
    out = _strip(audio, ("model_type", "max_position_embeddings", "num_key_value_heads", "dtype"))
    if ENCODER_HEADS[1] in out:
        out[ENCODER_HEADS[0]] = out.pop(ENCODER_HEADS[1])
    return out


def _text_to_qwen_asr(text: dict, tied: bool, where: str) -> dict:
    if text.get("use_sliding_window"):
        raise AdaptkitError(f"{where}: text_config.use_sliding_window: true; qwen_asr's text model has no sliding window")
    out = _strip(text, ("model_type", "rope_parameters", "dtype", *_NATIVE_ONLY_TEXT))
    rope = dict(text.get("rope_parameters") or {})
    if "rope_theta" not in rope and "rope_theta" not in text:
        raise AdaptkitError(f"{where}: text_config.rope_parameters.rope_theta: missing; the rope base cannot be guessed")
    out["rope_theta"] = rope.pop("rope_theta", text.get("rope_theta"))
    out["rope_scaling"] = {**rope, "rope_type": rope.get("rope_type", "default")}
    out["tie_word_embeddings"] = tied
    return out


def _published_mrope(text: dict, where: str) -> dict:
    """The mrope fields qwen_asr's rope reads, for a native folder with no record of its original."""
    if text.get("head_dim", 128) != 128:
        raise AdaptkitError(f"{where}: text_config.head_dim: {text.get('head_dim')}: qwen_asr's mrope_section is published "
                            "only for head_dim 128; convert a folder `adaptkit convert` wrote (it records the original)")
    return {k: copy.deepcopy(v) for k, v in PUBLISHED_MROPE.items() if k != "rope_type"}


def config_to_qwen_asr(config: dict, tied: bool, original: dict | None, audio_start_id: int | None,
                       where: str = "config.json") -> dict:
    """The native config.json -> qwen_asr's. `original`: the qwen_asr config.json the native one was
    converted from (recorded by the forward direction); its fields the native layout has no place for
    come back from it, and the values the native config holds win. Without it, qwen_asr's published
    values fill those fields (numerically inert: see `_MROPE`), or the conversion is refused."""
    text = _text_to_qwen_asr(config["text_config"], tied, where)
    thinker = {"audio_config": _audio_to_qwen_asr(config["audio_config"]), "text_config": text,
               "model_type": "qwen3_asr_thinker", "tie_word_embeddings": tied}
    for key in ("audio_token_id", "initializer_range"):
        if key in config:
            thinker[key] = config[key]
    top = _strip(config, ("audio_config", "text_config", "audio_token_id", "timestamp_token_id",
                          "token_classification_bias", "pad_token_id", "eos_token_id", "transformers_version"))
    top.update(thinker_config=thinker, tie_word_embeddings=tied, architectures=["Qwen3ASRForConditionalGeneration"])
    if original is not None:
        if detect(original, f"{where} (recorded original)") != QWEN_ASR:
            raise AdaptkitError(f"{where} (recorded original): not in qwen_asr's layout")
        return require_fields(_fill(top, original), where)
    text["rope_scaling"] = {**_published_mrope(config["text_config"], where), **text["rope_scaling"]}
    if audio_start_id is not None:
        thinker["audio_start_token_id"] = audio_start_id
    top.setdefault("support_languages", None)
    return require_fields(top, where)


def _fill(ours: dict, original: dict) -> dict:
    """`ours` with every field of `original` it lacks, nested dictionaries merged the same way."""
    out = copy.deepcopy(original)
    for key, value in ours.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _fill(value, out[key])
        else:
            out[key] = copy.deepcopy(value)
    return out


def native_feature_extractor(whisper: dict, n_window: int) -> dict:
    """A Qwen3ASRFeatureExtractor's settings from qwen_asr's WhisperFeatureExtractor ones (same log-mel)."""
    shared = ("chunk_length", "dither", "feature_size", "hop_length", "n_fft", "padding_value", "sampling_rate")
    fe = {"chunk_length": 30, "dither": 0.0, "feature_size": 128, "hop_length": 160, "n_fft": 400, "padding_value": 0.0,
          "sampling_rate": 16000, **{k: whisper[k] for k in shared if k in whisper}}
    n_samples = fe["chunk_length"] * fe["sampling_rate"]
    return {**fe, "feature_extractor_type": "Qwen3ASRFeatureExtractor", "min_length": 8000, "n_window": n_window,
            "n_samples": n_samples, "nb_max_frames": n_samples // fe["hop_length"], "padding_side": "right",
            "return_attention_mask": True}


def whisper_feature_extractor(native: dict) -> dict:
    """qwen_asr's WhisperFeatureExtractor settings from a Qwen3ASRFeatureExtractor's."""
    drop = ("feature_extractor_type", "min_length", "n_window", "return_attention_mask", "processor_class")
    return {**_strip(native, drop), "feature_extractor_type": "WhisperFeatureExtractor",
            "processor_class": "Qwen3ASRProcessor", "return_attention_mask": False}


NATIVE_CHAT_TEMPLATE = QWEN_ASR_CHAT_TEMPLATE.split("{%- if add_generation_prompt")[0] + (
    "{%- for m in messages if m.role == 'assistant' -%}"
    "{%- set said = m.content if m.content is string else "
    "m.content | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('') -%}"
    "{{- '<|im_start|>assistant\\n' -}}{% generation %}{{- said + '<|im_end|>\\n' -}}{% endgeneration %}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
"""The native processor's template: qwen_asr's prompt (system context, one audio placeholder per
audio, the user turn), then the assistant turns inside `{% generation %}` (the form transformers'
Qwen3ASRProcessor prefills the forced language with and trains on)."""


def native_tokenizer_config(tokenizer_config: dict, where: str = "tokenizer_config.json") -> dict:
    """The tokenizer config with the audio tokens transformers' processor reads as attributes."""
    out = dict(tokenizer_config)
    extra = out.get("extra_special_tokens")
    named = {**(extra if isinstance(extra, dict) else {}), **{k: out[k] for k in AUDIO_TOKENS if k in out}}
    added = {t.get("content") for t in (out.get("added_tokens_decoder") or {}).values() if isinstance(t, dict)}
    for attribute, token in AUDIO_TOKENS.items():
        if attribute not in named:
            if added and token not in added:
                raise AdaptkitError(f"{where}: added_tokens_decoder: no {token}; not a Qwen3-ASR tokenizer")
            out[attribute] = token
    return out


def qwen_asr_tokenizer_config(tokenizer_config: dict) -> dict:
    """The tokenizer config as transformers 4 reads it: transformers 5 writes `extra_special_tokens`
    as a list (4 wants a dict of named tokens) and the audio tokens as top-level keys."""
    out = dict(tokenizer_config)
    extra = out.get("extra_special_tokens")
    if isinstance(extra, list):
        out["additional_special_tokens"] = list(dict.fromkeys([*(out.get("additional_special_tokens") or []), *extra]))
        out["extra_special_tokens"] = {}
    named = out.setdefault("extra_special_tokens", {})
    for attribute in AUDIO_TOKENS:
        if attribute in out:
            named[attribute] = out.pop(attribute)
    out.pop("model_specific_special_tokens", None)
    return out
