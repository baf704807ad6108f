"""`adaptkit export`: PEFT folders that peft itself loads with the trained logits, merged checkpoints,
hub folders whose model card tables are the run's own, and one-line refusals."""

from __future__ import annotations

import json
import re

import pytest
import torch
from click.testing import CliRunner
from peft import PeftModel
from transformers import AutoTokenizer

from adaptkit.cli import main
from adaptkit.errors import AdaptkitError
from adaptkit.export import export
from adaptkit.freeze import apply, report, save_adapter, train_mode, trainable_parameters
from adaptkit.models import architecture, build_tiny

SPK = ["<|spk_0|>", "<|spk_1|>"]
LORA = {"target": "llm.attention", "r": 4, "alpha": 8}
SPECS = {
    "lora+tokens": {"add_tokens": SPK, "train": [{"tokens": "added"}], "lora": LORA},
    "projector+lora+tokens": {"add_tokens": SPK, "train": ["projector", {"tokens": "added"}], "lora": LORA},
    "projector+tokens": {"add_tokens": SPK, "train": ["projector", {"tokens": "added"}]},
}
STD = 0.02


@pytest.fixture
def fx(speech_batch, own_inputs, own_forward) -> dict:
    """The shared batch helpers, passed on to `trained_adapter`."""
    return {"speech_batch": speech_batch, "own_inputs": own_inputs, "own_forward": own_forward}


def trained_adapter(tmp_path, arch: str, spec: dict, tied: bool = False, *, speech_batch, own_inputs, own_forward, **section):
    """A tiny model trained 2 steps under `spec`, saved as an adapter that names its base; returns
    (adapter folder, the batch, the trained logits)."""
    model, tok = build_tiny(arch, tied=tied, init_std=STD, **section)
    model, _ = apply(model, spec, tokenizer=tok)
    impl = architecture(arch)
    fe = impl.tiny_feature_extractor(**{k: v for k, v in section.items() if k == "encoder"})
    batch = speech_batch(impl, model, tok, fe, answers=["<|spk_0|> thank you <|spk_1|> order"], seconds=(1.5, 1.0))
    train_mode(model)
    opt = torch.optim.AdamW(trainable_parameters(model), lr=1e-2)
    for _ in range(2):
        own_forward(impl, model, batch).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    with torch.no_grad():
        want = own_forward(impl, model, batch).logits
    model_section = {"tiny": arch, "tied": tied, "init_std": STD, **section}
    folder = save_adapter(model, tmp_path / "run" / "adapter", base=f"tiny:{arch}",
                          extra={"model": model_section, "task": "speaker_asr", "language": "en", "prompt": ""})
    return folder, own_inputs(impl, model, batch), want, model


@pytest.mark.parametrize("arch,tied,spec", [pytest.param("qwen3_asr", True, "projector+lora+tokens", marks=pytest.mark.qwen_asr_stack),
                                            ("composed", False, "projector+lora+tokens"), ("granite_speech", True, "lora+tokens")])
def test_a_peft_folder_loads_with_peft_on_a_fresh_base_and_gives_the_trained_logits(tmp_path, arch, tied, spec, fx):
    section = {"encoder": "whisper"} if arch == "composed" else {}
    folder, batch, want, _ = trained_adapter(tmp_path, arch, SPECS[spec], tied, **fx, **section)
    result = export(folder, tmp_path / "peft", "peft")
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["trainable_token_indices"]
    assert bool(config["modules_to_save"]) == ("projector" in spec)
    assert any("36501" in n for n in result.notes)  # token rows: vLLM cannot serve this folder

    fresh, _ = build_tiny(arch, tied=tied, init_std=STD, **section)
    root = fresh.thinker if arch == "qwen3_asr" else fresh
    loaded = PeftModel.from_pretrained(root, tmp_path / "peft").eval()
    with torch.no_grad():
        got = loaded(**batch).logits
    assert (got - want).abs().max().item() <= 1e-5
    tok = AutoTokenizer.from_pretrained(tmp_path / "peft")
    rows = next(iter(config["trainable_token_indices"].values()))
    assert set(tok.convert_tokens_to_ids(SPK)) <= set(rows)


@pytest.mark.qwen_asr_stack
def test_a_grown_vocabulary_loads_after_the_resize_the_note_names(tmp_path, fx):  # also: Qwen3-ASR untied
    full = len(build_tiny("qwen3_asr")[1])  # no spare rows: the new tokens grow the matrices
    folder, batch, want, model = trained_adapter(tmp_path, "qwen3_asr", SPECS["lora+tokens"], vocab_size=full, **fx)
    rows = model.thinker.model.embed_tokens.weight.shape[0]
    assert rows > full
    result = export(folder, tmp_path / "peft", "peft")
    assert f"resize_token_embeddings({rows})" in result.notes[0]
    fresh, _ = build_tiny("qwen3_asr", init_std=STD, vocab_size=full)
    fresh.thinker.resize_token_embeddings(rows)
    loaded = PeftModel.from_pretrained(fresh.thinker, tmp_path / "peft").eval()
    with torch.no_grad():
        assert (loaded(**batch).logits - want).abs().max().item() <= 1e-5


def test_the_turn_end_lora_adapter_loads_on_the_plain_causal_lm(tmp_path, fx):
    folder, batch, want, _ = trained_adapter(tmp_path, "composed", {"lora": {"target": "llm", "r": 4, "alpha": 8}},
                                             encoder=None, llm="qwen3", **fx)
    result = export(folder, tmp_path / "peft", "peft")
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert config["task_type"] == "CAUSAL_LM" and not config["trainable_token_indices"] and not config["modules_to_save"]
    assert not any("36501" in n for n in result.notes)  # LoRA only: vLLM's LoRA support can serve it
    fresh, _ = build_tiny("composed", init_std=STD, encoder=None, llm="qwen3")
    lm = PeftModel.from_pretrained(fresh.llm, tmp_path / "peft").eval()  # a Qwen3ForCausalLM, no adaptkit class
    assert type(lm.get_base_model()).__name__ == "Qwen3ForCausalLM"
    with torch.no_grad():
        got = lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert (got - want).abs().max().item() <= 1e-5


@pytest.mark.parametrize("arch", [pytest.param("qwen3_asr", marks=pytest.mark.qwen_asr_stack), "qwen2_audio"])
def test_peft_refuses_an_adapter_without_lora_in_one_line_and_the_cli_exits_2(tmp_path, fx, arch):
    folder, *_ = trained_adapter(tmp_path, arch, SPECS["projector+tokens"], **fx)
    with pytest.raises(AdaptkitError, match=r"^export --to peft: a PEFT folder holds a LoRA adapter and this one has no LoRA "
                                            r"\(it trains token rows, projector in full\); export --to merged or --to hub-folder$"):
        export(folder, tmp_path / "peft", "peft")
    result = CliRunner().invoke(main, ["export", str(folder), "--to", "peft"])
    assert result.exit_code == 2 and result.output.startswith("error: export --to peft:") and len(result.output.splitlines()) == 1
    assert not (tmp_path / "run" / "peft").exists()


def _table(card: str, heading: str) -> list[dict[str, str]]:
    """The Markdown table under `heading` as rows of cell strings."""
    block = card.split(heading + "\n", 1)[1].strip().split("\n\n", 1)[0].splitlines()
    cols = [c.strip() for c in block[0].strip("|").split("|")]
    return [dict(zip(cols, (c.strip() for c in line.strip("|").split("|")))) for line in block[2:]]


def _close(cell: str, value) -> bool:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return cell == {True: "yes", False: "no", None: "-"}.get(value, value)
    return abs(float(cell) - value) <= 1e-3 * max(1.0, abs(value))


@pytest.mark.parametrize("arch", [pytest.param("qwen3_asr", marks=pytest.mark.qwen_asr_stack), "qwen2_5_omni_thinker"])
def test_the_hub_folder_holds_the_merged_checkpoint_and_a_card_from_the_runs_own_files(tmp_path, fx, arch):
    from adaptkit.eval.report import EvalReport

    folder, batch, want, model = trained_adapter(tmp_path, arch, SPECS["lora+tokens"], **fx)
    run = folder.parent
    summary = {"steps": 3, "seconds": 1.25, "trainable_parameters": report(model).trainable_total, "final_loss": 2.5,
               "samples_per_second": 4.8, "dev_loss": 2.75, "report": report(model).to_dict()}
    (run / "summary.json").write_text(json.dumps(summary))
    headline = [{"subset": "all", "n": 4, "cp_error_rate": 0.4375, "wder": 0.125, "degenerate": 0.25},
                {"subset": "test_id", "n": 2, "cp_error_rate": 0.3125, "wder": 0.0625, "degenerate": 0.0}]
    rates = [{"set": "all", "n": 4, "no_eos": 0.25, "repeated_unit": 0.0, "any": 0.25}]
    rep = EvalReport(title="Speaker ASR", headline=headline, meta={"model": str(folder), "task": "speaker_asr"})
    rep.add("Degeneration rates", rates)
    rep.add("Per sample", [{"id": "x", "hypothesis": "never in the card"}], markdown=False)
    rep.write(folder / "eval")

    result = CliRunner().invoke(main, ["export", str(folder), "--to", "hub-folder"])
    assert result.exit_code == 0, result.output
    hub = run / "hub_folder"
    merged = type(model).from_pretrained(hub).eval()
    with torch.no_grad():
        assert ((merged.thinker if arch == "qwen3_asr" else merged)(**batch).logits - want).abs().max().item() <= 1e-5
    card = (hub / "README.md").read_text()
    saved = json.loads((folder / "eval" / "report.json").read_text())
    for heading, rows in (("### Headline", saved["headline"]), ("### Degeneration rates", saved["sections"][0]["rows"])):
        table = _table(card, heading)
        assert len(table) == len(rows)
        for cells, row in zip(table, rows):
            assert set(cells) == set(row) and all(_close(cells[k], v) for k, v in row.items()), (cells, row)
    trained = {r["component"]: r for r in _table(card, "## What trained")}
    for group, counts in summary["report"]["groups"].items():
        assert int(trained[group]["trainable"]) == counts["trainable"] and int(trained[group]["total"]) == counts["total"]
    training = _table(card, "## Training")[0]
    assert all(_close(training[k], summary[k]) for k in ("steps", "final_loss", "dev_loss", "trainable_parameters"))
    assert "never in the card" not in card and all(t in card for t in SPK)
    assert f"tiny:{arch}" in card
