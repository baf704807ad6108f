"""The miniature study's report: per-call scores, bootstrap confidence intervals, the verdict.

Every rate is a ratio of sums over a slice's calls (errors / reference length), so its confidence
interval comes from resampling calls (percentile bootstrap, 2,000 resamples, 95%). Variants and the
base decode the same calls, so a change from the base resamples the same calls on both sides
(paired); a (kind, learning rate) over its seeds averages the seeds' rates inside each resample.
numpy does the resampling: scipy.stats.bootstrap takes one statistic of independent samples, not
the paired ratio-of-sums over several seeds needed here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np

from adaptkit.data.manifest import ANSWER_PREFIX
from adaptkit.eval.run import score_rows

from study import SLICES, Run, untagged

RESAMPLES = 2000
METRICS = {"cer": "CER, tags removed", "wer": "WER, tags removed", "cpwer": "cpWER", "wder": "WDER", "degenerate": "degenerate"}
COUNTS = {"cer": ("cer_e", "cer_n"), "wer": ("wer_e", "wer_n"), "cpwer": ("cp_e", "cp_n"), "wder": ("wd_e", "wd_n"),
          "degenerate": ("degen", "one")}
"""Metric -> (numerator, denominator) columns of the per-call table."""


def plain(text: str) -> str:
    """The transcript without answer prefix and speaker tags, lower case."""
    return untagged(ANSWER_PREFIX.sub("", text or "")).lower()


def call_table(decoded: Path) -> dict[str, dict[str, np.ndarray]]:
    """Slice -> column -> one value per call (sorted by call id): error counts of every metric."""
    rows = [json.loads(x) for x in decoded.read_text(encoding="utf-8").splitlines() if x.strip()]
    scored = {r["id"]: r for r in score_rows(rows, "speaker_asr", str(decoded)).rows}
    out: dict[str, dict[str, list]] = {}
    for r in sorted(rows, key=lambda r: (r["set"], r["id"])):
        s = scored[r["id"]]
        chars = jiwer.process_characters(plain(r["reference"]), plain(r["hypothesis"]) or " ")
        cols = out.setdefault(r["set"], {})
        for key, value in (("cer_e", chars.substitutions + chars.deletions + chars.insertions),
                           ("cer_n", chars.hits + chars.substitutions + chars.deletions),
                           ("wer_e", s["errors"]), ("wer_n", s["length"]), ("cp_e", s["cp_errors"]), ("cp_n", s["cp_length"]),
                           ("wd_e", s["wder_wrong"]), ("wd_n", s["wder_aligned"]), ("degen", float(s["degenerate"])), ("one", 1.0)):
            cols.setdefault(key, []).append(value)
    return {k: {c: np.asarray(v, dtype=float) for c, v in cols.items()} for k, cols in out.items()}


def _rate(cols: dict[str, np.ndarray], metric: str, idx: np.ndarray | slice = slice(None)) -> np.ndarray | float:
    num, den = COUNTS[metric]
    e, n = cols[num][idx], cols[den][idx]
    total = n.sum(axis=-1)
    return np.where(total > 0, e.sum(axis=-1) / np.maximum(total, 1), np.nan)


@dataclass
class Estimate:
    """A rate, its 95% bootstrap interval, and the calls it is over."""

    value: float
    low: float
    high: float
    calls: int

    def text(self, signed: bool = False) -> str:
        """`0.123 [0.101, 0.150]`."""
        f = "{:+.3f}" if signed else "{:.3f}"
        return f"{f.format(self.value)} [{f.format(self.low)}, {f.format(self.high)}]"


def estimate(runs: list[dict[str, np.ndarray]], metric: str, minus: list[dict[str, np.ndarray]] | None = None,
             seed: int = 0) -> Estimate:
    """Mean over `runs` (seeds, the same calls) of the metric's rate, minus the mean over `minus`
    (the base, or the other kind's seeds) when given: paired, each resample draws the same calls."""
    calls = len(runs[0]["one"])
    idx = np.random.default_rng(seed).integers(0, calls, size=(RESAMPLES, calls))

    def stat(i):
        value = np.mean([_rate(r, metric, i) for r in runs], axis=0)
        return value - np.mean([_rate(r, metric, i) for r in minus], axis=0) if minus else value

    low, high = np.nanpercentile(stat(idx), [2.5, 97.5])
    return Estimate(float(stat(slice(None))), float(low), float(high), calls)


OOD = [s for s in SLICES if s != "test_id"]


def _grouped(runs: dict[Run, dict]) -> dict[tuple[str, float], list[dict]]:
    out: dict[tuple[str, float], list[dict]] = {}
    for run, table in sorted(runs.items(), key=lambda x: (x[0].kind, x[0].lr, x[0].seed)):
        out.setdefault((run.kind, run.lr), []).append(table)
    return out


def best_lrs(runs: dict[Run, dict]) -> dict[str, float]:
    """Per kind, the learning rate with the lowest cpWER on the dev set (the fine-tune's own held-out
    calls, not a test slice), averaged over seeds."""
    best: dict[str, tuple[float, float]] = {}
    for (kind, lr), tables in _grouped(runs).items():
        value = estimate([t["dev"] for t in tables], "cpwer").value
        if kind not in best or value < best[kind][1]:
            best[kind] = (lr, value)
    return {k: v[0] for k, v in best.items()}


def base_section(base: dict) -> list[str]:
    """The base's scores per slice (untagged: CER and WER; the tag metrics do not apply)."""
    lines = ["## The base before stage 2", "",
             "The merged stage-1 model, no adapter, decoding the same whole calls as every variant (its "
             "output has no speaker tags; CER and WER ignore tags).", "",
             "| slice | calls | CER [95% CI] | WER [95% CI] | degenerate | under 10% CER |", "|---|---|---|---|---|---|"]
    above = []
    for name in ("dev", *SLICES):
        cer = estimate([base[name]], "cer")
        lines.append(f"| {name} | {cer.calls} | {cer.text()} | {estimate([base[name]], 'wer').text()} | "
                     f"{estimate([base[name]], 'degenerate').value:.0%} | {'yes' if cer.value < 0.10 else '**no**'} |")
        if cer.value >= 0.10:
            above.append(f"- {name} is not under 10% CER: {cer.text()} over {cer.calls} calls"
                         + (", an interval that holds 10%, so these calls cannot tell it from the aim."
                            if cer.low < 0.10 else ", the whole interval above 10%."))
    return lines + ([""] + above if above else []) + [""]


def pooled_section(base: dict, runs: dict[Run, dict], best: dict[str, float]) -> list[str]:
    """Per kind and learning rate, over seeds: change of CER from the base, cpWER and degeneration per slice."""
    lines = ["## Each adapter and learning rate, over its seeds", "",
             "ΔCER = the variant's CER minus the base's on the same calls (paired; > 0 is damage). "
             "cpWER and WDER measure the new task (speaker tags). * = the learning rate chosen on the dev set.", "",
             "| variant | seeds | slice | base CER | CER | ΔCER vs base | cpWER | WDER | degenerate |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (kind, lr), tables in _grouped(runs).items():
        mark = "*" if best.get(kind) == lr else ""
        for name in ("dev", *SLICES):
            mine = [t[name] for t in tables]
            lines.append(f"| {kind} lr {lr:g}{mark} | {len(tables)} | {name} | {estimate([base[name]], 'cer').value:.3f} | "
                         f"{estimate(mine, 'cer').text()} | {estimate(mine, 'cer', [base[name]]).text(True)} | "
                         f"{estimate(mine, 'cpwer').text()} | {estimate(mine, 'wder').text()} | {estimate(mine, 'degenerate').text()} |")
    return lines + [""]


def seed_section(base: dict, runs: dict[Run, dict]) -> list[str]:
    """Every variant x seed x slice, each rate with its interval."""
    lines = ["## Every variant, seed and slice", "",
             "| variant | seed | slice | CER | ΔCER vs base | cpWER | WDER | degenerate |", "|---|---|---|---|---|---|---|---|"]
    for run, table in sorted(runs.items(), key=lambda x: (x[0].kind, x[0].lr, x[0].seed)):
        for name in ("dev", *SLICES):
            t = [table[name]]
            lines.append(f"| {run.kind} lr {run.lr:g} | {run.seed} | {name} | {estimate(t, 'cer').text()} | "
                         f"{estimate(t, 'cer', [base[name]]).text(True)} | {estimate(t, 'cpwer').text()} | "
                         f"{estimate(t, 'wder').text()} | {estimate(t, 'degenerate').text()} |")
    return lines + [""]


def _sentence(text: str) -> str:
    """`text` with its first letter upper case and a full stop."""
    return text[:1].upper() + text[1:] + "."


def _compare_word(e: Estimate, lower: str, higher: str) -> str:
    """What an interval of (A - B) says: A lower, A higher, or no clear difference."""
    return lower if e.high < 0 else higher if e.low > 0 else "no clear difference"


def verdict_section(base: dict, runs: dict[Run, dict], best: dict[str, float]) -> tuple[list[str], str]:
    """The seed's two claims tested at the learning rates chosen on dev; returns the lines and the verdict."""
    if set(best) != set(("projector", "lora_r8")):
        return ["## Verdict", "", "Not enough variants ran to test the claim.", ""], "untested"
    grouped = _grouped(runs)
    proj, lora = grouped[("projector", best["projector"])], grouped[("lora_r8", best["lora_r8"])]
    at = lambda tables, name: [t[name] for t in tables]  # noqa: E731
    in_domain = estimate(at(proj, "test_id"), "cpwer", at(lora, "test_id"))
    learns = in_domain.low <= 0
    lines = ["## Verdict", "",
             f"At the learning rates chosen on dev (projector + rows {best['projector']:g}, LoRA {best['lora_r8']:g}), "
             f"{len(proj)} and {len(lora)} seeds:", "",
             f"- **In domain** (test_id), cpWER projector − LoRA = {in_domain.text(True)}: "
             f"{_compare_word(in_domain, 'projector + rows tags better', 'LoRA tags better')}."]
    spared, worse = [], []
    for name in OOD:
        d_proj = estimate(at(proj, name), "cer", [base[name]])
        d_lora = estimate(at(lora, name), "cer", [base[name]])
        gap = estimate(at(lora, name), "cer", at(proj, name))
        if d_lora.low > 0 and d_proj.low <= 0:
            spared.append(name)
        if gap.high < 0:
            worse.append(name)
        lines.append(f"- **{name}**: ΔCER vs base, projector {d_proj.text(True)}, LoRA {d_lora.text(True)}; "
                     f"LoRA − projector {gap.text(True)} ({_compare_word(gap, 'LoRA lower', 'LoRA higher')}); "
                     f"degenerate: base {estimate([base[name]], 'degenerate').value:.0%}, projector "
                     f"{estimate(at(proj, name), 'degenerate').value:.0%}, LoRA {estimate(at(lora, name), 'degenerate').value:.0%}.")
    holds = learns and spared and not worse
    verdict = ("holds" if holds else "not reproduced")
    reasons = []
    if not learns:
        reasons.append("projector + rows learned the tags worse than LoRA in domain")
    if not spared:
        reasons.append("on no out-of-domain slice did LoRA damage the base's transcription while projector + rows did not")
    if worse:
        reasons.append(f"projector + rows transcribed worse than LoRA on {', '.join(worse)}")
    lines += ["", f"**The seed's claim at this size: {verdict}.** " + (
        f"LoRA damaged what the base could do on {', '.join(spared)}, projector + rows did not, and it tagged as well in domain."
        if holds else _sentence("; ".join(reasons))), ""]
    return lines, verdict
