"""The freezing DSL on classes without an architecture map: resolve exactly, or refuse in one line.

Each case asserts the exact parameters a spec opens, or the one-line refusal naming the candidates;
a refused `apply` leaves model and tokenizer as they were.
"""

from __future__ import annotations

import pytest
import torch
import transformers as T
from torch import nn

from adaptkit.errors import AdaptkitError
from adaptkit.freeze import apply, component_map, fingerprint, moved
from adaptkit.models.tokenizer import tiny_tokenizer


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    after = model.state_dict()
    return set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)


def speech_encoder_decoder(decoder_hidden: int) -> nn.Module:
    enc = T.Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16, 16),
                           conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    dec = T.BertConfig(vocab_size=1100, hidden_size=decoder_hidden, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, is_decoder=True, add_cross_attention=True)
    torch.manual_seed(0)
    config = T.SpeechEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    config.decoder_start_token_id, config.pad_token_id = 1, 0
    return T.SpeechEncoderDecoderModel(config)


class OddStack(nn.Module):
    """A user's own stack with odd names and an output layer with a bias."""

    def __init__(self, vocab: int = 1100, tied: bool = False, bias: bool = True):
        super().__init__()
        self.speech_enc = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 32))
        self.bridge = nn.Linear(32, 64)
        self.decoder = T.Qwen2Model(T.Qwen2Config(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                                  num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tied))
        self.out = nn.Linear(64, vocab, bias=bias)
        if tied:
            self.out.weight = self.decoder.embed_tokens.weight


def test_speech_encoder_decoder_resolves_exactly_through_its_own_embeddings():
    model = speech_encoder_decoder(48)  # hidden sizes differ: enc_to_dec_proj is the projector
    cmap = component_map(model)
    assert (cmap.encoder, cmap.projector, cmap.llm) == ("encoder", ["enc_to_dec_proj"], "decoder.bert")
    assert (cmap.embeddings, cmap.lm_head) == ("decoder.bert.embeddings.word_embeddings", "decoder.cls.predictions.decoder")
    assert set(cmap.sources.values()) == {"structural fallback"}
    model, report = apply(model, {"train": ["projector"], "lora": {"target": "llm.attention", "r": 2}})
    opened = sorted(n for n, p in model.named_parameters() if p.requires_grad and ".lora_" not in n)
    assert opened == ["enc_to_dec_proj.bias", "enc_to_dec_proj.weight"]
    assert report.lora_modules and all(m.startswith("decoder.bert.encoder.layer.") for m in report.lora_modules)
    assert report.components["llm"] == {"paths": ["decoder.bert"], "source": "structural fallback"}


def test_speech_encoder_decoder_without_a_projector_is_refused_naming_none():
    with pytest.raises(AdaptkitError, match=r"cannot tell the projector of SpeechEncoderDecoderModel .*candidates: none\); "
                                            r"name it under freeze.components"):
        component_map(speech_encoder_decoder(32))


def test_an_output_layer_with_a_bias_refuses_token_rows_and_changes_nothing():
    model, tok = speech_encoder_decoder(48), tiny_tokenizer()
    before, length = state(model), len(tok)
    with pytest.raises(AdaptkitError, match=r"the output layer decoder.cls.predictions.decoder has a bias, which peft's token-row layer drops"):
        apply(model, {"add_tokens": ["<|spk_0|>"], "train": [{"tokens": "added"}]}, tokenizer=tok)
    assert len(tok) == length and unchanged(model, before) and not hasattr(model, "adaptkit")


def test_odd_names_are_refused_listing_the_candidates_then_a_user_map_settles_it():
    model = OddStack()
    with pytest.raises(AdaptkitError) as err:
        component_map(model)
    message = str(err.value)
    assert "cannot tell the projector of OddStack" in message and "candidates: bridge, out" in message
    assert "{projector: bridge}" in message and "\n" not in message
    cmap = component_map(model, {"projector": "bridge", "lm_head": "out"})
    assert (cmap.encoder, cmap.projector, cmap.llm, cmap.embeddings, cmap.lm_head) == (
        "speech_enc", ["bridge"], "decoder", "decoder.embed_tokens", "out")
    assert cmap.sources == {"encoder": "structural fallback", "projector": "user map", "llm": "structural fallback",
                            "embeddings": "structural fallback", "lm_head": "user map"}
    model, _ = apply(model, {"components": {"projector": "bridge", "lm_head": "out"}, "train": ["projector"]})
    assert sorted(n for n, p in model.named_parameters() if p.requires_grad) == ["bridge.bias", "bridge.weight"]


def test_an_unknown_output_layer_never_rewrites_the_tie_flag_of_shared_weights():
    model = OddStack(tied=True, bias=False)  # `out` shares the embedding weight; nothing tells adaptkit it is the output layer
    tok = tiny_tokenizer()
    model, report = apply(model, {"components": {"projector": "bridge"}, "train": ["projector"]}, tokenizer=tok)
    assert model.decoder.config.tie_word_embeddings is True and not report.tied
    assert model.out.weight is model.decoder.embed_tokens.weight


@pytest.fixture(scope="module")
def phi4():
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8,
                  crop_size=32, feature_layer=-1)
    audio = dict(hidden_size=32, intermediate_size=64, num_blocks=1, num_attention_heads=2, nemo_conv_channels=32,
                 depthwise_seperable_out_channel=32, downsample_rate=1)
    config = T.Phi4MultimodalConfig(vocab_size=1100, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                    num_key_value_heads=2, vision_config=vision, audio_config=audio, pad_token_id=0)
    torch.manual_seed(0)
    return T.Phi4MultimodalForCausalLM(config)


PHI4_MAP = {"encoder": "model.embed_tokens_extend.audio_embed.encoder",
            "projector": ["model.embed_tokens_extend.audio_embed.up_proj_for_speech",
                          "model.embed_tokens_extend.audio_embed.down_proj_for_speech"],
            "llm": "model", "embeddings": "model.embed_tokens", "lm_head": "lm_head"}


@pytest.mark.parametrize("target", ["llm.mlp", "llm.attention", "llm"])
def test_phi4_lora_stays_in_the_language_model_although_the_towers_sit_inside_it(phi4, target):
    import copy

    model = copy.deepcopy(phi4)
    model, report = apply(model, {"components": PHI4_MAP, "train": ["projector"], "lora": {"target": target, "r": 2}})
    assert report.lora_modules and all(m.startswith("model.layers.") for m in report.lora_modules), report.lora_modules
    assert report.components["other"]["paths"]  # the vision tower, named in the report
    assert "model.embed_tokens_extend.image_embed" in report.components["other"]["paths"]


def test_phi4_a_regex_reaching_the_vision_tower_is_refused_naming_one_module(phi4):
    import copy

    model = copy.deepcopy(phi4)
    before = fingerprint(model)
    with pytest.raises(AdaptkitError, match=r"freeze.lora.target: 're:\(mlp\|fc\)' reaches outside llm .*e\.g\. model\.embed_tokens_extend.image_embed"):
        apply(model, {"components": PHI4_MAP, "train": ["projector"], "lora": {"target": "re:(mlp|fc)", "r": 2}})
    assert moved(model, before) == [] and not hasattr(model, "adaptkit")


def test_new_ids_inside_a_multimodal_id_range_are_refused_before_anything_changes():
    class Embedder(nn.Module):  # Gemma3n's multimodal embedders claim ids from vocab_offset on
        def __init__(self, offset: int):
            super().__init__()
            self.vocab_offset, self.vocab_size = offset, 16
            self.embedding = nn.Embedding(16, 32)

    tok = tiny_tokenizer()
    model = OddStack(bias=False)
    model.embed_audio = Embedder(len(tok) + 1)
    before, length = state(model), len(tok)
    with pytest.raises(AdaptkitError, match=rf"new token ids {len(tok) + 1}\.\.{len(tok) + 1} would land inside ids "
                                            rf"{len(tok) + 1}\.\.{len(tok) + 16}, which embed_audio claims"):
        apply(model, {"components": {"projector": "bridge", "lm_head": "out"}, "add_tokens": ["<a>", "<b>"],
                      "train": [{"tokens": "added"}]}, tokenizer=tok)
    assert len(tok) == length and unchanged(model, before)


def test_several_codebooks_in_one_table_are_refused_in_one_line():
    config = T.KyutaiSpeechToTextConfig(pad_token_id=0, audio_pad_token_id=456, vocab_size=200, hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=2, ffn_dim=64, codebook_vocab_size=64,
                                        num_codebooks=4, codec_config={"model_type": "mimi", "num_hidden_layers": 1})
    model = T.KyutaiSpeechToTextForConditionalGeneration(config)
    with pytest.raises(AdaptkitError, match=r"cannot tell the projector of KyutaiSpeechToTextForConditionalGeneration"):
        component_map(model)
    user = {"encoder": "codec_model", "projector": "codec_model.quantizer", "llm": "model", "embeddings": "model.embed_tokens",
            "lm_head": "lm_head"}
    tok = tiny_tokenizer()
    before, length = state(model), len(tok)
    with pytest.raises(AdaptkitError, match=r"the input embeddings model.embed_tokens of KyutaiSpeechToText.* are a "
                                            r"KyutaiSpeechToTextEmbeddings, not one nn.Embedding table"):
        apply(model, {"components": user, "add_tokens": ["<|spk_0|>"], "train": [{"tokens": "added"}]}, tokenizer=tok)
    assert len(tok) == length and unchanged(model, before)


def three_adamw_steps(model: nn.Module, loss_fn) -> None:
    from adaptkit.freeze import train_mode, trainable_parameters

    train_mode(model)
    opt = torch.optim.AdamW(trainable_parameters(model), lr=1e-2, weight_decay=0.01)
    for _ in range(3):
        loss_fn(model).backward()
        opt.step()
        opt.zero_grad()


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_phi4_with_a_user_map_trains_exactly_the_rows_and_round_trips(phi4, tied, tmp_path):
    import copy

    from peft.tuners.lora import LoraLayer

    from adaptkit.freeze import load_adapter, save_adapter, save_merged

    def fresh():
        m = copy.deepcopy(phi4)
        if tied:
            m.lm_head.weight = m.model.embed_tokens.weight
        return m, tiny_tokenizer()

    spec = {"components": PHI4_MAP, "add_tokens": ["<|spk_0|>", "<|spk_1|>"], "train": ["projector", {"tokens": "added"}],
            "lora": {"target": "llm.attention", "r": 2}}
    model, tok = fresh()
    model, report = apply(model, spec, tokenizer=tok)
    assert report.tied == tied
    ids = sorted(report.token_rows.values())
    batch = torch.tensor([tok("<|spk_0|> hello <|spk_1|> order", add_special_tokens=False)["input_ids"]])
    frozen = fingerprint(model)
    emb = model.model.embed_tokens
    before = emb.get_merged_weights(["default"]).detach().clone()
    three_adamw_steps(model, lambda m: m(input_ids=batch, labels=batch).loss)
    assert moved(model, frozen) == []
    changed = (emb.get_merged_weights(["default"]) != before).any(dim=1).nonzero().flatten().tolist()
    assert changed == ids
    assert all(n.startswith("model.layers.") for n, m in model.named_modules() if isinstance(m, LoraLayer))
    model.eval()
    with torch.no_grad():
        want = model(input_ids=batch).logits
    save_adapter(model, tmp_path / "adapter")
    again, again_tok = fresh()
    again, _ = load_adapter(again, tmp_path / "adapter", tokenizer=again_tok)
    with torch.no_grad():
        assert (again.eval()(input_ids=batch).logits - want).abs().max() <= 1e-5
    save_merged(again, tmp_path / "merged")
    reloaded = T.Phi4MultimodalForCausalLM.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        assert (reloaded(input_ids=batch).logits - want).abs().max() <= 1e-5
    assert (reloaded.lm_head.weight is reloaded.model.embed_tokens.weight) == tied


def gemma3n(text_rows: int, vision_offset: int):
    """A tiny Gemma3n; its vision tower (timm) is stubbed: only the audio path matters here."""
    from unittest import mock

    from transformers.models.gemma3n import modeling_gemma3n

    text = dict(vocab_size=text_rows, vocab_size_per_layer_input=min(text_rows, vision_offset), hidden_size=32,
                hidden_size_per_layer_input=8, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, head_dim=16, laurel_rank=4, altup_num_inputs=2, activation_sparsity_pattern=[0.0, 0.0],
                layer_types=["sliding_attention", "full_attention"], sliding_window=16, num_kv_shared_layers=0)
    audio = dict(vocab_size=16, vocab_offset=vision_offset + 16, hidden_size=32, input_feat_size=16, conf_num_attention_heads=2,
                 conf_num_hidden_layers=1, sscp_conv_channel_size=(8, 8), conf_attention_chunk_size=4, conf_attention_context_left=5,
                 conf_attention_context_right=0, conf_conv_kernel_size=3, conf_reduction_factor=1)
    config = T.Gemma3nConfig(text_config=text, audio_config=audio, vision_config=dict(vocab_size=16, vocab_offset=vision_offset,
                                                                                     hidden_size=32))
    real = T.AutoModel.from_config

    def from_config(cfg=None, **kw):
        cfg = kw.pop("config", cfg)
        return nn.Linear(4, 32) if isinstance(cfg, T.Gemma3nVisionConfig) else real(cfg, **kw)

    torch.manual_seed(0)
    with mock.patch.object(modeling_gemma3n.AutoModel, "from_config", side_effect=from_config):
        return T.Gemma3nForConditionalGeneration(config).eval()


def test_gemma3n_resolves_exactly_and_grows_its_vocabulary_keeping_the_scaled_embedding():
    tok = tiny_tokenizer()
    model = gemma3n(text_rows=len(tok) + 40, vision_offset=1000)
    cmap = component_map(model)
    assert (cmap.encoder, cmap.projector, cmap.llm) == ("model.audio_tower", ["model.embed_audio"], "model.language_model")
    assert (cmap.embeddings, cmap.lm_head) == ("model.language_model.embed_tokens", "lm_head")
    assert cmap.towers == ["model.vision_tower", "model.embed_vision"]
    old_rows, old_tokens = model.lm_head.weight.shape[0], len(tok)
    ids = torch.tensor([tok("hello order one two", add_special_tokens=False)["input_ids"]])
    features, mask = torch.randn(1, 24, 16, generator=torch.Generator().manual_seed(0)), torch.ones(1, 24, dtype=torch.bool)
    with torch.no_grad():
        want, audio_want = model(input_ids=ids).logits, model.model.get_audio_features(features, ~mask)[0]
    emb_class, scale = type(model.model.language_model.embed_tokens), model.model.language_model.embed_tokens.embed_scale.clone()
    tokens = [f"<|t{i}|>" for i in range(100)]
    model, report = apply(model, {"add_tokens": tokens, "train": ["projector", {"tokens": "added"}]}, tokenizer=tok)
    grown = model.model.language_model.embed_tokens.get_base_layer()
    assert type(grown) is emb_class and torch.equal(grown.embed_scale, scale) and grown.weight.shape[0] > old_rows
    assert model.config.text_config.vocab_size == grown.weight.shape[0]
    assert model.model.embed_audio.vocab_size == 16 and model.model.embed_vision.vocab_size == 16
    model.eval()
    with torch.no_grad():
        got, audio_got = model(input_ids=ids).logits, model.model.get_audio_features(features, ~mask)[0]
    assert (got[..., :old_tokens] - want[..., :old_tokens]).abs().max() <= 1e-6  # the old tokens' logits
    assert torch.isfinite(audio_got).all() and torch.equal(audio_got, audio_want)
    assert sorted(n for n, p in model.named_parameters() if p.requires_grad and "embed_audio" in n)


def test_gemma3n_new_ids_that_would_fall_into_the_vision_ids_are_refused():
    tok = tiny_tokenizer()
    model = gemma3n(text_rows=len(tok) + 8, vision_offset=len(tok) + 8)
    before, length = state(model), len(tok)
    with pytest.raises(AdaptkitError, match=r"would land inside ids .* which model.embed_vision claims"):
        apply(model, {"add_tokens": [f"<|t{i}|>" for i in range(100)], "train": [{"tokens": "added"}]}, tokenizer=tok)
    assert len(tok) == length and unchanged(model, before)


def test_speech_encoder_decoder_trains_only_projector_and_lora_and_round_trips(tmp_path):
    from peft.tuners.lora import LoraLayer

    from adaptkit.freeze import load_adapter, save_adapter, save_merged

    spec = {"train": ["projector"], "lora": {"target": "llm.attention", "r": 2}}
    model, _ = apply(speech_encoder_decoder(48), spec)
    waves = torch.randn(1, 1600, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[5, 17, 42, 8]])
    frozen = fingerprint(model)
    trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    three_adamw_steps(model, lambda m: m(input_values=waves, labels=labels).loss)
    assert moved(model, frozen) == []
    params = dict(model.named_parameters())
    assert all(not torch.equal(params[n], v) for n, v in trained.items() if ".lora_A." not in n)
    assert all(n.startswith("decoder.bert.") for n, m in model.named_modules() if isinstance(m, LoraLayer))
    model.eval()
    with torch.no_grad():
        want = model(input_values=waves, labels=labels).logits
    save_adapter(model, tmp_path / "adapter")
    again, _ = load_adapter(speech_encoder_decoder(48), tmp_path / "adapter")
    with torch.no_grad():
        assert (again.eval()(input_values=waves, labels=labels).logits - want).abs().max() <= 1e-5
    save_merged(again, tmp_path / "merged")
    reloaded = T.SpeechEncoderDecoderModel.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        assert (reloaded(input_values=waves, labels=labels).logits - want).abs().max() <= 1e-5


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_odd_stack_with_a_user_map_trains_exactly_the_rows(tied, tmp_path):
    from adaptkit.freeze import load_adapter, save_adapter

    def fresh():
        torch.manual_seed(0)
        return OddStack(tied=tied, bias=False), tiny_tokenizer()

    spec = {"components": {"projector": "bridge", "lm_head": "out"}, "add_tokens": ["<|spk_0|>", "<|spk_1|>"],
            "train": ["projector", {"tokens": "added"}], "lora": {"target": "llm.attention", "r": 2}}
    model, tok = fresh()
    model, report = apply(model, spec, tokenizer=tok)
    assert report.tied == tied
    ids = torch.tensor([tok("<|spk_0|> hello <|spk_1|> order", add_special_tokens=False)["input_ids"]])
    feats = torch.randn(1, ids.shape[1], 16, generator=torch.Generator().manual_seed(1))

    def logits(m):
        hidden = m.decoder(inputs_embeds=m.decoder.embed_tokens(ids) + m.bridge(m.speech_enc(feats))).last_hidden_state
        return m.out(hidden)

    rows = sorted(report.token_rows.values())
    emb, head = model.decoder.embed_tokens, model.out
    before = (emb.get_merged_weights(["default"]).detach().clone(), head.get_merged_weights(["default"]).detach().clone())
    frozen = fingerprint(model)
    three_adamw_steps(model, lambda m: torch.nn.functional.cross_entropy(logits(m)[0, :-1], ids[0, 1:]))
    assert moved(model, frozen) == []
    for layer, old in zip((emb, head), before):
        assert (layer.get_merged_weights(["default"]) != old).any(dim=1).nonzero().flatten().tolist() == rows
    model.eval()
    with torch.no_grad():
        want = logits(model)
    save_adapter(model, tmp_path / "adapter")
    again, again_tok = fresh()
    again, _ = load_adapter(again, tmp_path / "adapter", tokenizer=again_tok)
    with torch.no_grad():
        assert (logits(again.eval()) - want).abs().max() <= 1e-5


def test_gemma3n_trains_the_audio_embedder_and_rows_only(tmp_path):
    from adaptkit.freeze import load_adapter, save_adapter

    tok = tiny_tokenizer()
    model = gemma3n(text_rows=len(tok) + 40, vision_offset=1000)
    model, report = apply(model, {"add_tokens": ["<|spk_0|>", "<|spk_1|>"], "train": ["projector", {"tokens": "added"}],
                                  "lora": {"target": "llm.attention", "r": 2}}, tokenizer=tok)
    assert all(m.startswith("model.language_model.layers.") for m in report.lora_modules)
    ids = torch.tensor([tok("<|spk_0|> hello <|spk_1|> order", add_special_tokens=False)["input_ids"]])
    features, mask = torch.randn(1, 24, 16, generator=torch.Generator().manual_seed(0)), torch.ones(1, 24, dtype=torch.bool)
    frozen = fingerprint(model)
    emb = model.model.language_model.embed_tokens
    before = emb.get_merged_weights(["default"]).detach().clone()
    audio_before = {n: p.detach().clone() for n, p in model.model.embed_audio.named_parameters()}

    def loss(m):  # text loss plus the audio embedder's output, so every trained part gets a gradient
        audio = m.model.get_audio_features(features, ~mask)[0]
        return m(input_ids=ids, labels=ids).loss + audio.float().pow(2).mean()

    three_adamw_steps(model, loss)
    assert moved(model, frozen) == []
    assert (emb.get_merged_weights(["default"]) != before).any(dim=1).nonzero().flatten().tolist() == sorted(report.token_rows.values())
    assert any(not torch.equal(p, audio_before[n]) for n, p in model.model.embed_audio.named_parameters())
    assert report.groups["encoder"]["trainable"] == 0 and report.groups["other"]["trainable"] == 0
    model.eval()
    with torch.no_grad():
        want = model(input_ids=ids).logits, model.model.get_audio_features(features, ~mask)[0]
    save_adapter(model, tmp_path / "adapter")
    fresh_tok = tiny_tokenizer()
    again, _ = load_adapter(gemma3n(text_rows=len(fresh_tok) + 40, vision_offset=1000), tmp_path / "adapter", tokenizer=fresh_tok)
    again.eval()
    with torch.no_grad():
        assert (again(input_ids=ids).logits - want[0]).abs().max() <= 1e-5
        assert (again.model.get_audio_features(features, ~mask)[0] - want[1]).abs().max() <= 1e-5
