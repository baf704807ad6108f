"""Score whole sets of decoded outputs: speaker ASR, turn tags, turn end.

Each function takes a list of sample dicts (what the decoding step writes, one per utterance),
checks them, and returns `Scores`: overall metrics, breakdowns (per language, per set and, for
turn taking, per group such as a language pair), degeneration rates and one row per sample.
`Scores.report()` turns them into an `EvalReport` (JSON, Markdown, plots).

Rates over a group are pooled, not averaged: errors of all samples / reference tokens of all
samples (pyannote-style for DER: seconds over seconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from adaptkit.control_tokens import CONTROL_TOKEN
from adaptkit.errors import AdaptkitError
from adaptkit.eval import degeneration as dg
from adaptkit.eval import speaker_metrics as sm
from adaptkit.eval import turn_metrics as tm
from adaptkit.eval.report import Plot, EvalReport
from adaptkit.eval.text import CONTROL_TOKEN, NORMALIZATIONS
from adaptkit.tasks import SpeakerAsr, TurnEnd, TurnTags, task
from adaptkit.tasks.speaker_asr import ANSWER_PREFIX

Sample = Mapping[str, Any]


@dataclass
class Scores:
    """What a scoring function returns."""

    task: str
    """The name of the task scored (a key of `adaptkit.tasks.TASKS`)."""
    overall: dict[str, Any]
    breakdowns: dict[str, dict[str, dict[str, Any]]]
    """Key (`language`, `set`, `group`) -> value -> the same metrics as `overall`; a key that no
    sample carries is absent."""
    degeneration: dict[str, Any]
    """`overall`: `degeneration.rates` of every output; `set`, `language`: the same per value."""
    rows: list[dict[str, Any]]
    """One row per sample: id, language, set, its metrics and the degeneration checks that fired."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Task-specific tables: the threshold sweep and probability distribution (turn end)."""
    header: dict[str, str] = field(default_factory=dict)
    """How the numbers were made: `normalization` and `DER` (its timing source), for every report header."""

    def to_dict(self) -> dict[str, Any]:
        """Everything, as plain JSON types."""
        return {"task": self.task, "header": self.header, "overall": self.overall, "breakdowns": self.breakdowns,
                "degeneration": self.degeneration, "rows": self.rows, "extra": self.extra}

    def report(self, title: str | None = None, meta: Mapping[str, Any] | None = None) -> EvalReport:
        """The task's `EvalReport` (default title: the task's); its headline has one row for all samples and one per set."""
        t = task(self.task)
        report = t.report(self, title or t.title, dict(meta or {}))
        report.header = dict(self.header)
        return report


# ----------------------------------------------------------------------------- input checks


def _check_samples(samples: Iterable[Sample], source: str | None, required: Sequence[str]) -> list[Sample]:
    where = source or "samples"
    samples = list(samples)
    if not samples:
        raise AdaptkitError(f"{where}: no samples to score")
    seen: set[str] = set()
    for k, s in enumerate(samples):
        if not isinstance(s, Mapping):
            raise AdaptkitError(f"{where}: sample #{k} is a {type(s).__name__}, not a dict")
        sid = str(s.get("id", f"#{k}"))
        if sid in seen:
            raise AdaptkitError(f"{where}: sample id {sid!r} appears twice")
        seen.add(sid)
        for key in required:
            alts = key.split("|")
            if all(s.get(a) is None for a in alts):
                raise AdaptkitError(f"{where}: sample {sid!r} has no {' or '.join(repr(a) for a in alts)}")
    return samples


def speaker_header(config: sm.SpeakerMetricsConfig, with_der: bool) -> dict[str, str]:
    """The header of a speaker-ASR report: normalisation by name and where DER's times come from."""
    der = (f"times borrowed from the timed reference units by word alignment (no false alarm by construction); "
           f"{config.der_mode} speaker mapping, same-speaker segments merged, collar {config.collar:g} s each side, "
           f"overlap {'skipped' if config.skip_overlap else 'scored'}") if with_der else \
        "not computed: no timed reference units (DER would borrow its times from them)"
    return {"normalization": f"{config.normalization}: {NORMALIZATIONS[config.normalization]}", "DER": der}


TURN_HEADER = {"normalization": "none: the tag is read from the output (`<COMPLETE>`, or the bare word in any case)",
               "DER": "not applicable (no speaker times)"}
"""The header of a turn-tag report."""

TURN_END_HEADER = {"normalization": "none: probabilities, no text", "DER": "not applicable (no speaker times)"}
"""The header of a turn-end report."""


def _sid(s: Sample, k: int) -> str:
    return str(s.get("id", f"#{k}"))


def _text(s: Sample, key: str, k: int, source: str | None) -> str:
    v = s[key]
    if not isinstance(v, str):
        raise AdaptkitError(f"{source or 'samples'}: sample {_sid(s, k)!r}: {key!r} must be text, "
                            f"not {type(v).__name__}")
    return v


def _groups(samples: Sequence[Sample], keys: Sequence[str]) -> dict[str, dict[str, list[int]]]:
    out: dict[str, dict[str, list[int]]] = {}
    for key in keys:
        if any(s.get(key) is not None for s in samples):
            by: dict[str, list[int]] = {}
            for k, s in enumerate(samples):
                by.setdefault("-" if s.get(key) is None else str(s[key]), []).append(k)
            out[key] = by
    return out


def _degeneration(flags: Sequence[dg.Flags], groups: Mapping[str, Mapping[str, list[int]]]) -> dict[str, Any]:
    out: dict[str, Any] = {"overall": dg.rates(flags)}
    for key in ("set", "language"):
        if key in groups:
            out[key] = {v: dg.rates([flags[k] for k in idx]) for v, idx in groups[key].items()}
    return out


# ----------------------------------------------------------------------------- speaker ASR


def score_speaker_asr(samples: Iterable[Sample], *, allowed_tokens: Iterable[str] | None = None,
                      known_tokens: Iterable[str] = (), config: sm.SpeakerMetricsConfig = sm.DEFAULT,
                      degeneration: dg.DegenerationConfig = dg.DEFAULT,
                      source: str | None = None) -> Scores:
    """Score speaker-tagged transcripts.

    Each sample: `id`, `reference`, `hypothesis` (tagged text as the client shows it), `language`;
    optional `raw` (the same output with special tokens kept: the degeneration checks read it, so a
    leaked `<|im_start|>` that the client hides is still counted), `set` (e.g.
    `test_id` / `test_ood`), `ended_with_eos`, and `units` (the synth JSON's timed reference units,
    for DER with borrowed times). A leading Qwen3-ASR prefix `language X<asr_text>` is stripped from
    both texts. `allowed_tokens` defaults to every control token that appears in
    the references (so `<|spk_5|>` in a two-speaker set is a leak); `known_tokens` (the tokenizer's
    special and added tokens, `degeneration.tokenizer_control_tokens`) are leaks too when not
    allowed, whatever their shape, and so are a sample's own `control_tokens` (what `adaptkit eval`
    writes into decoded.jsonl: the tokenizer's tokens found in that output). `source` names the file
    in errors.
    """
    samples = _check_samples(samples, source, ("reference", "hypothesis", "language"))
    refs = [ANSWER_PREFIX.sub("", _text(s, "reference", k, source)) for k, s in enumerate(samples)]
    hyps = [ANSWER_PREFIX.sub("", _text(s, "hypothesis", k, source)) for k, s in enumerate(samples)]
    raws = [ANSWER_PREFIX.sub("", str(s["raw"])) if s.get("raw") is not None else hyps[k] for k, s in enumerate(samples)]
    allowed = set(allowed_tokens) if allowed_tokens is not None else {
        t for r in refs for t in CONTROL_TOKEN.findall(r)}
    known = set(known_tokens)
    pairs: list[sm.PairScores] = []
    flags: list[dg.Flags] = []
    rows: list[dict[str, Any]] = []
    for k, s in enumerate(samples):
        lang = str(s["language"])
        p = sm.score_pair(refs[k], hyps[k], lang, s.get("units"), config)
        f = dg.check(raws[k], refs[k], allowed, s.get("ended_with_eos"), lang, degeneration,
                     known | set(s.get("control_tokens") or ()))
        pairs.append(p)
        flags.append(f)
        rows.append({
            "id": _sid(s, k), "language": lang, "set": s.get("set"), "unit": p.unit,
            "cp_error_rate": p.cp.rate, "cp_errors": p.cp.errors, "cp_length": p.cp.length,
            "error_rate": p.agnostic.rate, "errors": p.agnostic.errors, "length": p.agnostic.length,
            "wder": p.wder.rate, "wder_wrong": p.wder.wrong, "wder_aligned": p.wder.aligned,
            "ref_speakers": p.speakers.reference, "hyp_speakers": p.speakers.hypothesis,
            "der": p.der.rate if p.der else None, "degenerate": f.degenerate, "flags": f.fired(),
        })
    groups = _groups(samples, ("language", "set"))

    def metrics(idx: Sequence[int]) -> dict[str, Any]:
        return _speaker_group([pairs[k] for k in idx], [flags[k] for k in idx])

    return Scores(
        task=SpeakerAsr.name,
        overall=metrics(range(len(samples))),
        breakdowns={key: {v: metrics(idx) for v, idx in by.items()} for key, by in groups.items()},
        degeneration=_degeneration(flags, groups),
        rows=rows,
        extra={"allowed_tokens": sorted(allowed)},
        header=speaker_header(config, any(p.der is not None for p in pairs)),
    )


def _speaker_group(pairs: Sequence[sm.PairScores], flags: Sequence[dg.Flags]) -> dict[str, Any]:
    cp = sum((p.cp for p in pairs), sm.CpError())
    agn = sum((p.agnostic for p in pairs), sm.ErrorCounts())
    wd = sum((p.wder for p in pairs), sm.Wder())
    spk = sum((p.speakers for p in pairs), sm.SpeakerCount())
    ders = [p.der for p in pairs if p.der is not None]
    der = sum(ders, sm.DerCounts()) if ders else None
    units = {p.unit for p in pairs}
    n = len(pairs)
    return {
        "n": n, "unit": units.pop() if len(units) == 1 else "mixed",
        "cp_error_rate": cp.rate, "cp_errors": cp.errors, "cp_length": cp.length,
        "cp_substitutions": cp.substitutions, "cp_deletions": cp.deletions, "cp_insertions": cp.insertions,
        "error_rate": agn.rate, "wder": wd.rate, "wder_wrong": wd.wrong, "wder_aligned": wd.aligned,
        "speaker_count_abs": spk.absolute / n, "speaker_count_signed": spk.signed / n,
        "speaker_count_exact": sum(p.speakers.absolute == 0 for p in pairs) / n,
        "der": der.rate if der else None, "der_missed": der.missed if der else None,
        "der_false_alarm": der.false_alarm if der else None, "der_confusion": der.confusion if der else None,
        "der_total": der.total if der else None, "der_n": len(ders),
        "degenerate": sum(f.degenerate for f in flags) / n,
    }


# ----------------------------------------------------------------------------- turn tags


def parse_turn_tag(text: str | None, labels: Sequence[str] = tm.TURN_TAGS) -> str:
    """The tag a model output names: `<COMPLETE>` (or the bare word, any case) -> `COMPLETE`.

    No tag, or several different ones, gives `turn_metrics.OTHER`.
    """
    if text is None:
        return tm.OTHER
    found = {t for t in labels if f"<{t}>" in text}
    if len(found) == 1:
        return found.pop()
    if not found:
        bare = text.strip().strip("<>").upper()
        if bare in labels:
            return bare
    return tm.OTHER


def score_turn_tags(samples: Iterable[Sample], *, labels: Sequence[str] = tm.TURN_TAGS,
                    degeneration: dg.DegenerationConfig = dg.DEFAULT, source: str | None = None,
                    known_tokens: Iterable[str] = ()) -> Scores:
    """Score turn-tag predictions (three classes by default).

    Each sample: `id`, `reference` (or `label`, as in turn_tags.jsonl: `complete`, `COMPLETE` or
    `<COMPLETE>`), `hypothesis` (the model output, parsed by `parse_turn_tag`), `language`;
    optional `set` and `group` (e.g. a language pair, default: none). `known_tokens`: as for
    `score_speaker_asr`.
    """
    samples = _check_samples(samples, source, ("reference|label", "hypothesis"))
    labels = list(labels)
    truth, pred, flags, rows = [], [], [], []
    allowed = [f"<{t}>" for t in labels]
    for k, s in enumerate(samples):
        ref = s.get("reference", s.get("label"))
        t = parse_turn_tag(str(ref), labels)
        if t == tm.OTHER:
            raise AdaptkitError(f"{source or 'samples'}: sample {_sid(s, k)!r}: reference label {ref!r} "
                                f"is not one of {', '.join(labels)}")
        hyp = _text(s, "hypothesis", k, source)
        p = parse_turn_tag(hyp, labels)
        f = dg.check(str(s.get("raw", hyp)), None, allowed, s.get("ended_with_eos"), s.get("language"), degeneration,
                     set(known_tokens) | set(s.get("control_tokens") or ()))
        truth.append(t)
        pred.append(p)
        flags.append(f)
        rows.append({"id": _sid(s, k), "language": s.get("language"), "set": s.get("set"), "group": s.get("group"),
                     "reference": t, "prediction": p, "correct": t == p, "flags": f.fired()})
    groups = _groups(samples, ("language", "set", "group"))

    def metrics(idx: Sequence[int]) -> dict[str, Any]:
        m = tm.multiclass_metrics([truth[k] for k in idx], [pred[k] for k in idx], labels)
        m["degenerate"] = sum(flags[k].degenerate for k in idx) / len(idx)
        return m

    return Scores(task=TurnTags.name, overall=metrics(range(len(samples))),
                  breakdowns={key: {v: metrics(idx) for v, idx in by.items()} for key, by in groups.items()},
                  degeneration=_degeneration(flags, groups), rows=rows, extra={"labels": labels}, header=dict(TURN_HEADER))


# ----------------------------------------------------------------------------- turn end


def score_turn_end(samples: Iterable[Sample], *, threshold: float = 0.5,
                   thresholds: Sequence[float] = tm.SWEEP, source: str | None = None) -> Scores:
    """Score turn-end probabilities.

    Each sample: `id`, `reference` (or `ended`, as in turn_end.jsonl: true when the turn is
    complete), `probability` (of "complete", in [0, 1]), `language`; optional `language_pair`
    (the seed's per-pair table, e.g. chinese-english), `set` and `group`.
    """
    samples = _check_samples(samples, source, ("reference|ended", "probability"))
    y, p, rows = [], [], []
    for k, s in enumerate(samples):
        ref = s.get("reference", s.get("ended"))
        prob = s["probability"]
        if not isinstance(ref, (bool, int)) or isinstance(ref, int) and ref not in (0, 1):
            raise AdaptkitError(f"{source or 'samples'}: sample {_sid(s, k)!r}: reference must be true/false, got {ref!r}")
        if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not (0.0 <= prob <= 1.0) or math.isnan(prob):
            raise AdaptkitError(f"{source or 'samples'}: sample {_sid(s, k)!r}: probability must be a number "
                                f"in [0, 1], got {prob!r}")
        y.append(bool(ref))
        p.append(float(prob))
        rows.append({"id": _sid(s, k), "language": s.get("language"), "set": s.get("set"), "group": s.get("group"),
                     "reference": bool(ref), "probability": float(prob), "correct": (prob >= threshold) == bool(ref)})
    groups = _groups(samples, ("language", "language_pair", "set", "group"))

    def metrics(idx: Sequence[int]) -> dict[str, Any]:
        return tm.binary_metrics([y[k] for k in idx], [p[k] for k in idx], threshold)

    return Scores(task=TurnEnd.name, overall=metrics(range(len(samples))),
                  breakdowns={key: {v: metrics(idx) for v, idx in by.items()} for key, by in groups.items()},
                  degeneration={}, rows=rows, header=dict(TURN_END_HEADER),
                  extra={"sweep": tm.threshold_sweep(y, p, thresholds), "distribution": tm.probability_distribution(y, p)})


# ----------------------------------------------------------------------------- reports


def _pick(m: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    return {k: m.get(k) for k in keys}


def _headline(scores: Scores, keys: Sequence[str]) -> list[dict[str, Any]]:
    rows = [{"subset": "all", **_pick(scores.overall, keys)}]
    for value, m in scores.breakdowns.get("set", {}).items():
        rows.append({"subset": value, **_pick(m, keys)})
    return rows


def _breakdown_sections(report: EvalReport, scores: Scores, keys: Sequence[str], plot_keys: Sequence[str]) -> None:
    for key, by in scores.breakdowns.items():
        rows = [{key: v, **_pick(m, keys)} for v, m in by.items()]
        plots = [Plot(f"by_{key}", "bar", f"By {key}", rows, x=key, y=list(plot_keys))] if key == "language" else []
        report.add(f"By {key}", rows, plots=plots)


def speaker_report(scores: Scores, title: str, meta: dict[str, Any]) -> EvalReport:
    """The speaker-ASR report: headline, breakdowns, degeneration, samples and the worst ten."""
    keys = ("n", "unit", "cp_error_rate", "error_rate", "wder", "der", "speaker_count_abs", "degenerate")
    report = EvalReport(title, _headline(scores, keys), meta={**meta, "allowed_tokens": scores.extra.get("allowed_tokens")})
    _breakdown_sections(report, scores, keys, ("cp_error_rate", "wder", "der"))
    _degeneration_section(report, scores)
    report.add("Samples", scores.rows, markdown=False)
    worst = sorted(scores.rows, key=lambda r: -(r["cp_error_rate"] or 0))[:10]
    report.add("Worst samples", [_pick(r, ("id", "language", "set", "cp_error_rate", "wder", "flags")) for r in worst])
    return report


def _degeneration_section(report: EvalReport, scores: Scores) -> None:
    rows = [{"subset": "all", **scores.degeneration["overall"]}]
    rows += [{"subset": v, **r} for v, r in scores.degeneration.get("set", {}).items()]
    report.add("Degeneration", rows, text="Share of outputs flagged by each check (see adaptkit.eval.degeneration).")


def turn_tags_report(scores: Scores, title: str, meta: dict[str, Any]) -> EvalReport:
    """The turn-tag report: headline, per class, confusion matrix, breakdowns, degeneration, samples."""
    keys = ("n", "accuracy", "macro_f1", "other", "degenerate")
    report = EvalReport(title, _headline(scores, keys), meta=meta)
    labels = scores.extra["labels"]
    per_class = [{"class": c, **scores.overall["per_class"][c]} for c in labels]
    conf = scores.overall["confusion"]
    report.add("Per class", per_class, plots=[Plot("confusion", "matrix", "Confusion matrix (rows: true)",
                                                   matrix=conf["matrix"], row_labels=conf["true"],
                                                   col_labels=conf["predicted"], xlabel="predicted", ylabel="true")])
    report.add("Confusion matrix", [{"true": t, **dict(zip(conf["predicted"], row))}
                                    for t, row in zip(conf["true"], conf["matrix"])])
    _breakdown_sections(report, scores, keys, ("accuracy", "macro_f1"))
    _degeneration_section(report, scores)
    report.add("Samples", scores.rows, markdown=False)
    return report


def turn_end_report(scores: Scores, title: str, meta: dict[str, Any]) -> EvalReport:
    """The turn-end report: headline, threshold sweep, probability by true class, breakdowns, samples."""
    keys = ("n", "threshold", "accuracy", "precision", "recall", "f1", "accuracy_complete", "accuracy_incomplete")
    report = EvalReport(title, _headline(scores, keys), meta=meta)
    sweep = scores.extra["sweep"]
    report.add("Threshold sweep", [_pick(r, keys[1:]) for r in sweep],
               plots=[Plot("threshold_sweep", "line", "Threshold sweep", sweep, x="threshold",
                           y=["accuracy", "precision", "recall", "f1"])])
    report.add("Probability by true class", [{"class": c, **d} for c, d in scores.extra["distribution"].items()])
    _breakdown_sections(report, scores, keys, ("accuracy", "f1"))
    report.add("Samples", scores.rows, markdown=False)
    return report
