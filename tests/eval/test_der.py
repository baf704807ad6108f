"""DER against the references: spy-der (md-eval-22.pl's counting) for the default mode, pyannote for
its own mode; the RTTM reader's refusals."""

from __future__ import annotations

import random
import warnings

import pytest
from pyannote.core import Annotation, Segment
from pyannote.metrics.diarization import DiarizationErrorRate

from adaptkit.errors import AdaptkitError
from adaptkit.eval import der as dm
from adaptkit.eval.rttm import load_rttm


def _random_turns(rng: random.Random, speakers: list[str], duration: float = 20.0) -> list[tuple[float, float, str]]:
    """(start, duration, speaker) with overlaps (some of one speaker with itself) and a duplicated line."""
    segs, t = [], 0.0
    while t < duration:
        start = round(t + rng.uniform(0, 1.5), 2)
        dur = round(rng.uniform(0.3, 4.0), 2)
        segs.append((start, dur, rng.choice(speakers)))
        t = start + dur - (rng.uniform(0.1, 1.5) if rng.random() < 0.35 else 0)
    if rng.random() < 0.5:
        segs.append(segs[rng.randrange(len(segs))])  # a duplicated line
    if rng.random() < 0.5:  # a speaker's turn inside its own longer turn
        s, d, spk = segs[rng.randrange(len(segs))]
        segs.append((round(s + d / 4, 2), round(d / 2, 2), spk))
    return segs


def _write_rttm(path, files: dict[str, list[tuple[float, float, str]]]) -> None:
    lines = [f"SPEAKER {uri} 1 {s:.2f} {d:.2f} <NA> <NA> {spk} <NA> <NA>"
             for uri, segs in files.items() for s, d, spk in segs]
    path.write_text(";; generated\n" + "\n".join(lines) + "\n")


def _spyder(ref, hyp, collar: float, skip_overlap: bool):
    spyder = pytest.importorskip("spyder")
    turns = {uri: [(spk, s, round(s + d, 2)) for s, d, spk in segs] for uri, segs in ref.items()}
    hyps = {uri: [(spk, s, round(s + d, 2)) for s, d, spk in segs] for uri, segs in hyp.items()}
    out = spyder.DER(turns, hyps, per_file=True, collar=collar, regions="nonoverlap" if skip_overlap else "all")
    return out


PAIRS = 16  # x 4 settings = 64 generated pairs


@pytest.mark.parametrize("collar, skip_overlap", [(0.0, False), (0.25, False), (0.0, True), (0.25, True)])
def test_md_eval_mode_equals_spyder(tmp_path, collar, skip_overlap):
    rng = random.Random(int(collar * 100) + 7 * skip_overlap)
    ref = {f"call{k}": _random_turns(rng, ["spk_0", "spk_1"]) for k in range(PAIRS)}
    hyp = {uri: _random_turns(rng, ["A", "B", "C"][: rng.randint(1, 3)]) for uri in ref}
    _write_rttm(tmp_path / "ref.rttm", ref)
    _write_rttm(tmp_path / "hyp.rttm", hyp)
    refs, hyps = load_rttm(tmp_path / "ref.rttm"), load_rttm(tmp_path / "hyp.rttm")
    expected = _spyder(ref, hyp, collar, skip_overlap)
    agree = 0
    for uri in ref:
        ours = dm.der(refs[uri], hyps[uri], collar, skip_overlap)
        agree += ours.rate == pytest.approx(expected[uri].der, abs=1e-6)
    assert agree == PAIRS
    total = dm.der_from_rttm(tmp_path / "ref.rttm", tmp_path / "hyp.rttm", collar, skip_overlap)
    assert total.rate == pytest.approx(expected["Overall"].der, abs=1e-6)


def _annotation(segs) -> Annotation:
    ann = Annotation(uri="u")
    for k, (s, d, spk) in enumerate(segs):
        ann[Segment(s, s + d), k] = spk
    return ann


def test_same_speaker_overlaps_count_once():
    ref = _annotation([(0, 10, "A"), (12, 3, "B")])
    assert dm.der(ref, _annotation([(0, 10, "x"), (0, 10, "x"), (12, 3, "y")])).rate == 0.0  # duplicated line
    assert dm.der(_annotation([(0, 10, "A"), (5, 10, "A")]), _annotation([(0, 15, "x")])).rate == 0.0
    for mode in dm.DER_MODES:  # both modes merge
        assert dm.der(_annotation([(0, 10, "A"), (5, 10, "A")]), _annotation([(0, 15, "x")]), mode=mode).rate == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        unmerged = DiarizationErrorRate()(_annotation([(0, 10, "A"), (5, 10, "A")]), _annotation([(0, 15, "x")]))
    assert unmerged == pytest.approx(0.25)  # what pyannote says on separate tracks


@pytest.mark.parametrize("collar, skip_overlap", [(0.0, False), (0.25, False), (0.0, True)])
def test_pyannote_mode_is_pyannote_on_merged_speakers(collar, skip_overlap):
    rng = random.Random(3)
    metric = DiarizationErrorRate(collar=2 * collar, skip_overlap=skip_overlap)
    total = dm.DerCounts()
    for _ in range(6):
        ref, hyp = _annotation(_random_turns(rng, ["a", "b"])), _annotation(_random_turns(rng, ["x", "y", "z"]))
        total += dm.der(ref, hyp, collar, skip_overlap, mode="pyannote")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            metric(ref.support(), hyp.support())
    assert total.rate == pytest.approx(abs(metric), abs=1e-9)
    assert total.missed == pytest.approx(metric["missed detection"], abs=1e-9)
    assert total.total == pytest.approx(metric["total"], abs=1e-9)


def test_modes_differ_only_with_collar_or_overlap_skipping():
    rng = random.Random(11)
    pairs = [(_annotation(_random_turns(rng, ["a", "b"])), _annotation(_random_turns(rng, ["x", "y"]))) for _ in range(40)]
    for r, h in pairs[:10]:  # collar 0, overlap scored: same mapping, same number
        assert dm.der(r, h).rate == pytest.approx(dm.der(r, h, mode="pyannote").rate, abs=1e-9)
    differ = sum(abs(dm.der(r, h, 0.25, True).rate - dm.der(r, h, 0.25, True, mode="pyannote").rate) > 1e-9
                 for r, h in pairs)
    assert 0 <= differ < len(pairs)
    with pytest.raises(AdaptkitError, match="mode: 'nist' is not a DER mode"):
        dm.der(pairs[0][0], pairs[0][1], mode="nist")  # type: ignore[arg-type]
    with pytest.raises(AdaptkitError, match="collar"):
        dm.der(pairs[0][0], pairs[0][1], collar=-1)


# ----------------------------------------------------------------------------- the RTTM reader


@pytest.mark.parametrize("line, message", [
    ("SPEAKER call1 1 0.0 oops <NA> <NA> spk_0", r"bad.rttm:2: duration 'oops' is not a finite number"),
    ("SPEAKER call1 1 nan 1.0 <NA> <NA> spk_0", r"bad.rttm:2: start 'nan' is not a finite number"),
    ("SPEAKER call1 1 0.0 inf <NA> <NA> spk_0", r"bad.rttm:2: duration 'inf'"),
    ("SPEAKER call1 1 -1.0 2.0 <NA> <NA> spk_0", r"bad.rttm:2: start '-1.0' is not a finite number >= 0"),
    ("SPEAKER call1 1 1.0 -0.5 <NA> <NA> spk_0", r"bad.rttm:2: duration '-0.5'"),
    ("speaker call1 1 0.0 1.0 <NA> <NA> spk_0", r"bad.rttm:2: unknown RTTM type 'speaker' \(types are upper case"),
    ("SPEAKRE call1 1 0.0 1.0 <NA> <NA> spk_0", r"bad.rttm:2: unknown RTTM type 'SPEAKRE'"),
    ("SPEAKER call1 1 0.0 1.0", r"bad.rttm:2: a SPEAKER line needs at least 8 fields, got 5"),
])
def test_rttm_reader_refuses_what_it_cannot_read(tmp_path, line, message):
    bad = tmp_path / "bad.rttm"
    bad.write_text("SPEAKER call1 1 0.0 1.0 <NA> <NA> spk_0 <NA> <NA>\n" + line + "\n")
    with pytest.raises(AdaptkitError, match=message):
        load_rttm(bad)


def test_rttm_reader_reads_bom_comments_and_other_types(tmp_path):
    path = tmp_path / "ok.rttm"
    path.write_bytes("\ufeffSPEAKER call1 1 0.0 1.0 <NA> <NA> A <NA> <NA>\n;; comment\n\n"
                     "SPKR-INFO call1 1 <NA> <NA> <NA> adult_male A <NA>\n"
                     "SPEAKER call1 1 2.0 1.0 <NA> <NA> B <NA> <NA>\n".encode("utf-8"))
    ann = load_rttm(path)["call1"]
    assert [(s.start, s.end, lab) for s, _, lab in ann.itertracks(yield_label=True)] == [(0.0, 1.0, "A"), (2.0, 3.0, "B")]
    with pytest.raises(AdaptkitError, match="cannot read"):
        load_rttm(tmp_path / "missing.rttm")
