"""cpWER/cpCER against meeteval, WDER on hand-worked examples, DER with borrowed times (RTTM DER: test_der.py)."""

from __future__ import annotations

import itertools
import random

import pytest
from meeteval.wer import cp_word_error_rate

from adaptkit.errors import AdaptkitError
from adaptkit.eval import speaker_metrics as sm
from adaptkit.eval.text import is_unspaced, language_code, normalize, tokens

RAW_WORDS = sm.SpeakerMetricsConfig(normalization="none", unit="word")
RAW_CHARS = sm.SpeakerMetricsConfig(normalization="none", unit="char")


# ----------------------------------------------------------------------------- parsing and text


def test_parse_tagged_prefix_empty_segments_and_custom_pattern():
    assert sm.parse_tagged("hi there <|spk_0|> a b <|spk_1|><|spk_0|> c") == [
        ("?", "hi there"), ("0", "a b"), ("1", ""), ("0", "c")]
    assert sm.parse_tagged("   <|spk_1|> x") == [("1", "x")]
    assert sm.parse_tagged("") == []
    assert sm.parse_tagged("no tags at all") == [("?", "no tags at all")]
    assert sm.parse_tagged("[A] yes [B] no", r"\[(\w)\]") == [("A", "yes"), ("B", "no")]
    assert sm.parse_tagged("<S1> yes <S2> no", r"<S\d>") == [("<S1>", "yes"), ("<S2>", "no")]


def test_language_units_and_normalisation():
    assert [is_unspaced(x) for x in ("ja", "ja-JP", "Japanese", "zh_CN", "th", "en", "ms", None)] == [
        True, True, True, True, True, False, False, False]
    assert language_code("EN-us") == "en"
    assert normalize("Don't STOP, ＡＢＣ１２！") == "dont stop  abc12 "
    assert tokens("はい、そうです。", "char") == list("はいそうです")
    assert tokens("Hello <|im_start|> World!", "word") == ["hello", "<|im_start|>", "world"]


# ----------------------------------------------------------------------------- cpWER / cpCER == meeteval


def _levenshtein(a: list[str], b: list[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def _brute_force_cp(ref: dict[str, list[str]], hyp: dict[str, list[str]]) -> int:
    """Every pairing of reference and hypothesis speakers, padded with empty speakers."""
    r, h = list(ref.values()), list(hyp.values())
    n = max(len(r), len(h))
    r += [[]] * (n - len(r))
    h += [[]] * (n - len(h))
    return min(sum(_levenshtein(r[i], h[p[i]]) for i in range(n)) for p in itertools.permutations(range(n))) if n else 0


def _render(speakers: dict[str, list[str]], rng: random.Random, sep: str) -> str:
    """Interleave each speaker's tokens in 1-3 chunks as a tagged transcript (empty speakers: a bare tag)."""
    queues = []
    for spk, toks in speakers.items():
        cuts = sorted(rng.sample(range(1, len(toks)), min(len(toks) - 1, rng.randint(0, 2)))) if len(toks) > 1 else []
        chunks = [toks[a:b] for a, b in zip([0] + cuts, cuts + [len(toks)])] or [[]]
        queues.append([spk, chunks])
    parts = []
    if "?" in speakers:  # the unknown speaker must come first, untagged
        parts.append(sep.join(speakers["?"]))
        queues = [q for q in queues if q[0] != "?"]
    while queues:
        q = rng.choice(queues)
        parts.append(f"<|spk_{q[0]}|> " + sep.join(q[1].pop(0)))
        if not q[1]:
            queues.remove(q)
    return " ".join(parts)


def _random_case(rng: random.Random, alphabet: list[str]):
    ref = {str(s): [rng.choice(alphabet) for _ in range(rng.choice([0, 0, 1, 3, 6, 10]))]
           for s in rng.sample(range(4), rng.randint(0, 3))}
    mode = rng.random()
    if mode < 0.5:  # a noisy copy of the reference with speakers relabelled, merged or split
        labels = rng.sample(range(4), 4)
        hyp: dict[str, list[str]] = {}
        for k, (spk, toks) in enumerate(ref.items()):
            target = str(labels[k] if rng.random() > 0.3 else labels[rng.randint(0, 3)])
            for t in toks:
                r = rng.random()
                if r < 0.1:
                    continue
                hyp.setdefault(target, []).append(rng.choice(alphabet) if r < 0.2 else t)
        if rng.random() < 0.3:
            hyp.setdefault(str(rng.randint(0, 3)), [])  # an empty hypothesis speaker
    else:
        hyp = {str(s): [rng.choice(alphabet) for _ in range(rng.choice([0, 1, 4, 8]))]
               for s in rng.sample(range(4), rng.randint(0, 3))}
    if rng.random() < 0.1:
        hyp["?"] = [rng.choice(alphabet) for _ in range(rng.randint(1, 3))]
    return ref, hyp


@pytest.mark.parametrize("unit", ["word", "char"])
def test_cp_error_equals_meeteval_on_generated_cases(unit):
    rng = random.Random(1234 if unit == "word" else 99)
    alphabet = list("abcdefg") if unit == "word" else list("はいえあのかさ")
    sep = " " if unit == "word" else ""
    config = RAW_WORDS if unit == "word" else RAW_CHARS
    unequal = empty = 0
    for case in range(120):
        ref, hyp = _random_case(rng, alphabet)
        ref_text, hyp_text = _render(ref, rng, sep), _render(hyp, rng, sep)
        ours = sm.cp_error(ref_text, hyp_text, "ja" if unit == "char" else "en", config)
        untagged = hyp.pop("?", [])  # hypothesis text before its first tag: inserted, never a speaker
        theirs = cp_word_error_rate({k: " ".join(v) for k, v in ref.items()}, {k: " ".join(v) for k, v in hyp.items()},
                                    reference_sort=False, hypothesis_sort=False)  # no times: nothing to sort
        assert (ours.errors, ours.length) == (theirs.errors + len(untagged), theirs.length), (case, ref_text, hyp_text)
        assert ours.insertions >= len(untagged)
        assert ours.rate == (theirs.errors + len(untagged)) / theirs.length if theirs.length else ours.rate is None
        assert ours.errors == _brute_force_cp(ref, hyp) + len(untagged)
        # The fallback used above meeteval's 20-speaker limit agrees too.
        unit_tokens = lambda d: {k: v for k, v in sm.by_speaker(sm.tagged_tokens(d, unit, config)).items()  # noqa: E731
                                 if k != "?"}
        assert sm._cp_hungarian(unit_tokens(ref_text), unit_tokens(hyp_text)).errors == theirs.errors
        # S/D/I may split differently between equally good pairings or alignments, but must add up.
        assert ours.substitutions + ours.deletions + ours.insertions == ours.errors
        hyp_total = sum(len(v) for v in hyp.values()) + len(untagged)
        assert ours.insertions - ours.deletions == hyp_total - ours.length
        nonempty = lambda d: sum(1 for v in d.values() if v)  # noqa: E731
        unequal += nonempty(ref) != nonempty(hyp)
        empty += any(not v for v in list(ref.values()) + list(hyp.values()))
    assert unequal >= 30 and empty >= 30  # the generator really covers both situations


def test_cpcer_japanese_by_hand_and_by_language_code():
    ref = "<|spk_0|> こんにちは <|spk_1|> はい"
    hyp = "<|spk_1|> こんにちわ <|spk_0|> はい、はい"
    # ref chars: spk_0 こんにちは (5), spk_1 はい (2) -> 7; punctuation is dropped by normalisation.
    # Best pairing spk_0<->spk_1': は->わ (1 sub); spk_1<->spk_0': はい vs はいはい (2 ins) -> 3 / 7.
    for lang in ("ja", "ja-JP", "Japanese"):
        e = sm.cp_error(ref, hyp, lang)
        assert (e.errors, e.length, e.substitutions, e.insertions, e.deletions) == (3, 7, 1, 2, 0)
    assert sm.cpcer(ref, hyp).rate == pytest.approx(3 / 7)
    # By words each Japanese turn is one token: 1 sub + 1 ins over 2 words.
    assert sm.cp_error(ref, hyp, "en").errors == 2
    theirs = cp_word_error_rate({"0": list("こんにちは"), "1": list("はい")}, {"1": list("こんにちわ"), "0": list("はいはい")},
                                reference_sort=False, hypothesis_sort=False)
    assert theirs.errors == 3 and theirs.length == 7


def test_cp_error_extra_and_missing_speakers():
    e = sm.cpwer("<|spk_0|> a b <|spk_1|> c d", "<|spk_0|> a b <|spk_1|> c d <|spk_2|> e f")
    assert (e.errors, e.insertions, e.false_alarm_speakers) == (2, 2, 1)
    e = sm.cpwer("<|spk_0|> a b <|spk_1|> c d", "<|spk_0|> a b c d")
    assert (e.errors, e.deletions, e.insertions, e.missed_speakers) == (4, 2, 2, 1)
    assert sm.cpwer("", "").rate is None and sm.cpwer("", "<|spk_0|> a").errors == 1


def test_cp_error_beyond_meeteval_speaker_limit():
    ref = "<|spk_0|> a b c <|spk_1|> d e"
    hyp = "<|spk_0|> a b c <|spk_1|> d e " + " ".join(f"<|spk_{k}|> x" for k in range(2, 30))
    e = sm.cp_error(ref, hyp, "en")
    assert (e.errors, e.insertions, e.length, e.false_alarm_speakers) == (28, 28, 5, 28)


def test_speaker_agnostic_error_rate_and_speaker_count():
    e = sm.error_rate("<|spk_0|> a b c <|spk_1|> d e", "<|spk_1|> a b c <|spk_0|> d x f")
    assert (e.errors, e.length, e.substitutions, e.insertions) == (2, 5, 1, 1)
    assert sm.error_rate("<|spk_0|> 今日は", "<|spk_1|> 今日わ", "zh").rate == pytest.approx(1 / 3)
    c = sm.speaker_count("<|spk_0|> a <|spk_1|> b", "<|spk_0|> a b <|spk_1|>")
    assert (c.reference, c.hypothesis, c.absolute, c.signed) == (2, 1, 1, -1)
    c = sm.speaker_count("<|spk_0|> a", "<|spk_0|> a <|spk_1|> b <|spk_2|> c")
    assert (c.absolute, c.signed) == (2, 2)


# ----------------------------------------------------------------------------- WDER by hand


@pytest.mark.parametrize("ref, hyp, lang, wrong, aligned", [
    # ref a0 b0 c0 d1 e1, hyp a1 b1 c0 d0 x0 f0: a,b,c,d correct, e->x substituted, f inserted: 5 aligned.
    # Counts (hyp, ref): (1,0)=2, (0,0)=1, (0,1)=2. Best map 1->0, 0->1 keeps 4; c carries the wrong speaker.
    ("<|spk_0|> a b c <|spk_1|> d e", "<|spk_1|> a b <|spk_0|> c d x f", "en", 1, 5),
    # One reference speaker, two hypothesis speakers: only one maps; the other's 2 words are wrong -> 2/4.
    ("<|spk_0|> a b c d", "<|spk_0|> a b <|spk_1|> c d", "en", 2, 4),
    # Swapped labels are no error.
    ("<|spk_0|> hello there <|spk_1|> hi", "<|spk_1|> hello there <|spk_0|> hi", "en", 0, 3),
    # Substitution b->z aligned, said by spk_0 but given to hyp spk_1 (mapped to spk_1): 1 of 3 wrong.
    ("<|spk_0|> a b <|spk_1|> c", "<|spk_0|> a <|spk_1|> z c", "en", 1, 3),
    # Deletions and insertions do not count: d deleted, nothing else wrong.
    ("<|spk_0|> a b c <|spk_1|> d", "<|spk_0|> a b c", "en", 0, 3),
    # Untagged output is no speaker: all 4 aligned words are wrong.
    ("<|spk_0|> a b <|spk_1|> c d", "a b c d", "en", 4, 4),
    # A missing first tag: "a b" has no speaker (wrong), "c d" is right -> 2/4.
    ("<|spk_0|> a b <|spk_1|> c d", "a b <|spk_1|> c d", "en", 2, 4),
    # An untagged reference is one speaker, which untagged output matches.
    ("a b c d", "a b c d", "en", 0, 4),
    # Characters: はいいいえ on both sides; hyp gives the third い to spk_0: counts (0,0)=2, (0,1)=1, (1,1)=2.
    ("<|spk_0|> はい <|spk_1|> いいえ", "<|spk_0|> はいい <|spk_1|> いえ", "ja", 1, 5),
])
def test_wder_hand_worked(ref, hyp, lang, wrong, aligned):
    w = sm.wder(ref, hyp, lang)
    assert (w.wrong, w.aligned) == (wrong, aligned)
    assert w.rate == pytest.approx(wrong / aligned)


def test_wder_mapping_and_empty():
    w = sm.wder("<|spk_0|> a b <|spk_1|> c", "<|spk_1|> a b <|spk_0|> c")
    assert dict(w.mapping) == {"1": "0", "0": "1"}
    assert sm.wder("<|spk_0|> a", "").rate is None


def test_score_pair_shares_everything():
    p = sm.score_pair("<|spk_0|> a b c <|spk_1|> d e", "<|spk_1|> a b <|spk_0|> c d x f", "en")
    assert p.unit == "word" and p.der is None
    assert p.cp == sm.cp_error("<|spk_0|> a b c <|spk_1|> d e", "<|spk_1|> a b <|spk_0|> c d x f")
    assert (p.agnostic.errors, p.wder.wrong, p.speakers.absolute) == (2, 1, 0)
    total = p.cp + p.cp
    assert total.errors == 2 * p.cp.errors and total.rate == p.cp.rate


# ----------------------------------------------------------------------------- DER with borrowed times


UNITS = [
    {"speaker": "spk_0", "start": 0.0, "end": 2.0, "text": "a b c d"},   # 0.5 s a word
    {"speaker": "spk_1", "start": 2.5, "end": 3.5, "text": "e f"},
]


@pytest.mark.parametrize("hyp, expected", [
    ("<|spk_0|> a b c d <|spk_1|> e f", 0.0),
    ("<|spk_1|> a b c d <|spk_0|> e f", 0.0),            # labels are mapped
    ("<|spk_0|> a b c d zz yy <|spk_1|> e f", 0.0),      # inserted words take no time
    ("<|spk_0|> a b c d e f", 1.0 / 3.0),                # e f (1 s of 3 s) confused
    ("<|spk_0|> a b d <|spk_1|> e f", 0.5 / 3.0),        # c deleted: 0.5 s missed
    ("<|spk_0|> a b <|spk_1|> c d e f", 1.0 / 3.0),      # c d (1 s) given to the other speaker
    ("", 1.0),                                           # nothing: all missed
])
def test_der_from_tagged_borrowed_times(hyp, expected):
    d = sm.der_from_tagged(UNITS, hyp, "en")
    assert d.total == pytest.approx(3.0)
    assert d.false_alarm == pytest.approx(0.0)
    assert d.rate == pytest.approx(expected)


def test_der_from_tagged_characters_and_collar():
    units = [{"speaker": "spk_0", "start": 0.0, "end": 1.0, "text": "はいそう"},
             {"speaker": "spk_1", "start": 1.0, "end": 1.5, "text": "ええ"}]
    # 4 characters in 1 s; "そう" (0.5 s) goes to the other speaker -> 0.5 / 1.5.
    assert sm.der_from_tagged(units, "<|spk_0|> はい<|spk_1|> そうええ", "ja").rate == pytest.approx(1 / 3)
    ann = sm.borrowed_time_annotation(units, "<|spk_0|> はい<|spk_1|> そうええ", "ja")
    assert [(round(s.start, 3), round(s.end, 3), label) for s, _, label in ann.itertracks(yield_label=True)] == [
        (0.0, 0.5, "0"), (0.5, 1.5, "1")]
    # A collar of 0.25 each side removes every boundary's neighbourhood from scoring:
    # 0-0.25, 0.75-1.25 (the speaker change at 1.0) and 1.25-1.5 go, 0.25-0.75 s stays.
    loose = sm.der_from_tagged(units, "<|spk_0|> はい<|spk_1|> そうええ", "ja",
                               sm.SpeakerMetricsConfig(collar=0.25))
    assert loose.total == pytest.approx(0.5)
    assert sm.der_from_tagged([], "<|spk_0|> a").rate is None


def test_text_before_the_first_tag_is_an_error_not_a_speaker():
    ref, hyp = "<|spk_0|> a b <|spk_1|> c d", "a b <|spk_1|> c d"
    e = sm.cp_error(ref, hyp, "en")
    assert (e.errors, e.insertions, e.deletions, e.length) == (4, 2, 2, 4)  # "?" would have paired with spk_0: 0
    assert (sm.speaker_count(ref, hyp).hypothesis, sm.wder(ref, hyp).wrong) == (1, 2)
    p = sm.score_pair(ref, hyp, "en", UNITS)
    assert (p.cp.errors, p.speakers.hypothesis, p.wder.wrong) == (4, 1, 2)
    units = [{"speaker": "spk_0", "start": 0.0, "end": 1.0, "text": "a b"},
             {"speaker": "spk_1", "start": 1.0, "end": 2.0, "text": "c d"}]
    d = sm.der_from_tagged(units, hyp, "en")
    assert (d.missed, d.confusion, d.total) == pytest.approx((1.0, 0.0, 2.0))  # "a b" has no speaker: missed
    assert sm.cp_error("a b", "a b", "en").errors == 0  # an untagged reference is one speaker


def test_normalisation_is_named():
    ref, hyp = "<|spk_0|> It's 3.5%", "<|spk_0|> its 3 5"
    assert sm.cp_error(ref, hyp, "en").errors == 0
    raw = sm.SpeakerMetricsConfig(normalization="none")
    assert sm.cp_error(ref, hyp, "en", raw).errors == 3  # It's/its, 3.5%/3, and 5 inserted
    assert normalize("U.S. e-mail 50%") == "u s  e mail 50 "
    with pytest.raises(AdaptkitError, match="normalization: 'lower' is not a normalisation"):
        sm.cp_error(ref, hyp, "en", sm.SpeakerMetricsConfig(normalization="lower"))  # type: ignore[arg-type]
