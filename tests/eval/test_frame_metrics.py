"""Streaming end-of-turn metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest
from sklearn.metrics import f1_score, jaccard_score

from adaptkit.errors import AdaptkitError
from adaptkit.eval import frame_metrics as fm

INF = math.inf

REF = ["SU", "SU", "SU", "SU", "Pause", "Pause", "Gap", "Gap", "Gap", "SU"]
HYP = ["SU", "SU", "SU", "Pause", "Pause", "Gap", "Gap", "Gap", "SU", "Pause"]


def test_frame_scores_by_hand():
    m = fm.frame_scores(REF, HYP)
    # SU: tp 3 (#0-2), fp 1 (#8), fn 2 (#3, #9). Pause: tp 1 (#4), fp 2 (#3, #9), fn 1 (#5).
    # Gap: tp 2 (#6, #7), fp 1 (#5), fn 1 (#8).
    su, pause, gap = (m["per_class"][c] for c in fm.CLASSES)
    assert (su["precision"], su["recall"], su["f1"], su["iou"], su["support"]) == pytest.approx((3 / 4, 3 / 5, 2 / 3, 1 / 2, 5))
    assert (pause["precision"], pause["recall"], pause["f1"], pause["iou"], pause["support"]) == \
        pytest.approx((1 / 3, 1 / 2, 0.4, 1 / 4, 2))
    assert (gap["precision"], gap["recall"], gap["f1"], gap["iou"], gap["support"]) == pytest.approx((2 / 3, 2 / 3, 2 / 3, 1 / 2, 3))
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.4 + 2 / 3) / 3)
    assert m["mean_iou"] == pytest.approx((0.5 + 0.25 + 0.5) / 3)
    assert (m["accuracy"], m["frames"]) == (pytest.approx(0.6), 10)
    assert m["confusion"]["matrix"] == [[3, 2, 0], [0, 1, 1], [1, 0, 2]]
    assert m["macro_f1"] == pytest.approx(f1_score(REF, HYP, labels=list(fm.CLASSES), average="macro"))
    assert m["mean_iou"] == pytest.approx(jaccard_score(REF, HYP, labels=list(fm.CLASSES), average="macro"))


def test_frame_scores_absent_class_and_errors():
    # No Gap on either side: macro F1 averages SU (2/3) and Pause (0), not a third 0.
    m = fm.frame_scores(["SU", "SU", "Pause"], ["SU", "Pause", "SU"])
    assert m["per_class"]["Gap"]["f1"] == 0.0 and m["macro_f1"] == pytest.approx(1 / 4)
    assert fm.frame_scores([], [])["accuracy"] is None
    with pytest.raises(AdaptkitError, match="reference has 10 frames but hypothesis has 9"):
        fm.frame_scores(REF, HYP[:9])
    with pytest.raises(AdaptkitError, match="hypothesis has labels outside .*'Overlap'"):
        fm.frame_scores(["SU"], ["Overlap"])


def test_decision_points_skips_overlap_short_and_edges():
    silences = [
        {"start": 0.0, "end": 0.2, "label": "Gap", "before": None, "after": "spk_0"},  # call start
        {"start": 1.0, "end": 1.5, "label": "Overlap", "before": "spk_0", "after": "spk_1"},
        {"start": 2.0, "end": 2.05, "label": "Pause", "before": "spk_0", "after": "spk_0"},  # 50 ms
        {"start": 5.2, "end": 5.3, "label": "Pause", "before": "spk_1", "after": "spk_1"},  # 100 ms (0.0999... in floats)
        {"start": 4.0, "end": 4.6, "label": "Gap", "before": "spk_1", "after": "spk_0"},
        {"start": 9.0, "end": 9.5, "label": "Gap", "before": "spk_0", "after": None},  # call end
    ]
    pts = fm.decision_points(silences)
    assert pts == [fm.DecisionPoint(5.2, 5.3, "Pause"), fm.DecisionPoint(4.0, 4.6, "Gap")]
    assert pts[1].duration == pytest.approx(0.6)
    assert len(fm.decision_points(silences, min_duration=0.01)) == 3
    with pytest.raises(AdaptkitError, match="silence 0 has label 'Noise'"):
        fm.decision_points([{"start": 0, "end": 1, "label": "Noise", "before": "a", "after": "b"}])


def _points() -> list[fm.DecisionPoint]:
    return [fm.DecisionPoint(0.0, 0.5, "Pause"), fm.DecisionPoint(2.0, 3.0, "Pause"), fm.DecisionPoint(4.0, 4.4, "Pause"),
            fm.DecisionPoint(5.0, 5.8, "Gap"), fm.DecisionPoint(7.0, 7.6, "Gap"), fm.DecisionPoint(9.0, 10.0, "Gap")]


def test_tradeoff_cutoff_only_before_silence_end():
    # Pauses: fire at 0.5 == duration (speaker already back: no cut-off), 0.3 < 1.0 (cut-off), never.
    # Gaps: 0.2 (detected), 0.7 >= 0.6 (missed), 0.4 (detected).
    t = fm.tradeoff(_points(), [0.5, 0.3, None, 0.2, 0.7, 0.4])
    assert (t["pauses"], t["gaps"], t["cutoffs"], t["missed"]) == (3, 3, 1, 1)
    assert t["false_cutoff_rate"] == pytest.approx(1 / 3)
    assert t["gap_latency_median"] == pytest.approx(0.4)
    assert t["gap_latency_p90"] == INF  # 1 of 3 missed > 10%
    assert t["gap_detected"] == pytest.approx(2 / 3)
    # Half the Gaps missed: the median is inf too.
    assert fm.tradeoff(_points(), [None, None, None, None, None, 0.1])["gap_latency_median"] == INF
    with pytest.raises(AdaptkitError, match="6 decision points but 2 fire times"):
        fm.tradeoff(_points(), [0.1, 0.2])


def test_gap_latency_median_and_p90():
    gaps = [fm.DecisionPoint(0.0, 1.0, "Gap")] * 10
    fires = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, None]
    t = fm.tradeoff(gaps, fires)
    # Sorted latencies 0.1..0.9, inf: median (0.5 + 0.6) / 2; exactly 10% missed keeps p90 finite.
    assert t["gap_latency_median"] == pytest.approx(0.55)
    assert t["gap_latency_p90"] == pytest.approx(0.9)
    assert t["gap_detected"] == pytest.approx(0.9) and t["false_cutoff_rate"] is None
    t = fm.tradeoff(gaps, fires[:8] + [None, None])  # 20% missed
    assert t["gap_latency_p90"] == INF and t["gap_latency_median"] == pytest.approx(0.55)


ROWS = [
    {"setting": 0.3, "false_cutoff_rate": 0.30, "gap_latency_median": 0.2},
    {"setting": 0.5, "false_cutoff_rate": 0.12, "gap_latency_median": 0.4},
    {"setting": 0.7, "false_cutoff_rate": 0.04, "gap_latency_median": 0.9},
    {"setting": 0.9, "false_cutoff_rate": 0.0, "gap_latency_median": INF},
]


def test_at_budgets_picks_best_setting_or_none():
    b = fm.at_budgets(ROWS, latency_budgets=(0.1, 0.5, 1.0), cutoff_budgets=(0.0, 0.1, 0.2))
    assert b == {"fcr@0.1s": None, "fcr@0.5s": 0.12, "fcr@1s": 0.04,
                 "latency@fcr0": INF, "latency@fcr0.1": 0.9, "latency@fcr0.2": 0.4}
    assert fm.at_budgets(ROWS[:2], latency_budgets=(), cutoff_budgets=(0.1,)) == {"latency@fcr0.1": None}
    assert list(fm.at_budgets(ROWS)) == ["fcr@0.2s", "fcr@0.5s", "fcr@1s", "fcr@2s",
                                         "latency@fcr0.05", "latency@fcr0.1", "latency@fcr0.2"]


def test_curve_one_row_per_setting_sorted():
    pts = _points()
    rows = fm.curve(pts, {0.8: [None] * 6, 0.2: [0.1, 0.1, 0.1, 0.1, 0.1, 0.1]})
    assert [r["setting"] for r in rows] == [0.2, 0.8]
    assert (rows[0]["false_cutoff_rate"], rows[0]["gap_latency_median"]) == (1.0, pytest.approx(0.1))
    assert (rows[1]["false_cutoff_rate"], rows[1]["gap_detected"]) == (0.0, 0.0)


def test_first_fire_times():
    s = [0.1, 0.4, 0.8, 0.9]
    assert fm.first_fire(s, 0.5) == pytest.approx(0.3)  # third score, available 3 hops in
    assert fm.first_fire(s, 0.8) == pytest.approx(0.3)  # >= threshold
    assert fm.first_fire(s, 0.5, offset=0.05) == pytest.approx(0.35)
    assert fm.first_fire(s, 0.4, hop=0.2) == pytest.approx(0.4)
    assert fm.first_fire(s, 0.95) is None and fm.first_fire([], 0.5) is None


def test_calls_per_minute():
    assert fm.calls_per_minute(30, 120.0) == pytest.approx(15.0)
    with pytest.raises(AdaptkitError, match="must be positive"):
        fm.calls_per_minute(3, 0)


def test_plot_writes_png(tmp_path):
    path = tmp_path / "plots" / "tradeoff.png"
    fm.plot_tradeoff({"vad timeout": ROWS, "model": [{"false_cutoff_rate": None, "gap_latency_median": 0.3}]},
                     path, title="EOT trade-off")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 1000
    assert [p.name for p in path.parent.iterdir()] == ["tradeoff.png"]  # no temp file left


# ----------------------------------------------------------------------------- eot-bench mode


def _silence(start, end, label):
    return {"start": start, "end": end, "label": label, "before": "A", "after": "A" if label == "Pause" else "B"}


def test_eot_bench_decision_points_keep_holds_of_0_2_to_5_s():
    silences = [_silence(0, 0.15, "Pause"), _silence(1, 1.2, "Pause"), _silence(2, 7.1, "Pause"),
                _silence(8, 8.05, "Gap"), _silence(9, 15.0, "Gap")]
    assert [(p.start, p.label) for p in fm.decision_points(silences)] == [
        (0, "Pause"), (1, "Pause"), (2, "Pause"), (9, "Gap")]  # two-party: every silence of 100 ms or more
    assert [(p.start, p.label) for p in fm.decision_points(silences, mode="eot-bench")] == [
        (1, "Pause"), (8, "Gap"), (9, "Gap")]  # holds of 0.2-5 s, every end of turn
    with pytest.raises(AdaptkitError, match="mode: 'eot' is not a turn-taking mode"):
        fm.decision_points(silences, mode="eot")  # type: ignore[arg-type]


def test_eot_bench_fires_above_the_threshold_only():
    assert fm.first_fire([0.2, 0.5, 0.7], 0.5) == pytest.approx(0.2)
    assert fm.first_fire([0.2, 0.5, 0.7], 0.5, mode="eot-bench") == pytest.approx(0.3)
    assert fm.first_fire([0.5], 0.5, mode="eot-bench") is None


def test_eot_bench_charges_a_missed_end_of_turn_the_timeout_and_ranks_on_the_mean():
    points = [fm.DecisionPoint(0.0, 1.0, "Gap")] * 4 + [fm.DecisionPoint(0.0, 1.0, "Pause")] * 2
    fires = [0.2, 0.4, None, None, 0.5, None]
    two = fm.tradeoff(points, fires)
    eot = fm.tradeoff(points, fires, mode="eot-bench", timeout=3.0)
    assert two["gap_latency_median"] == INF and eot["gap_latency_median"] == pytest.approx(1.7)  # (0.4 + 3) / 2
    assert eot["gap_latency_mean"] == pytest.approx((0.2 + 0.4 + 3.0 + 3.0) / 4)
    assert eot["false_cutoff_rate"] == two["false_cutoff_rate"] == 0.5 and eot["missed"] == 2
    sweep = fm.curve(points, {0.5: fires, 0.9: [None] * 6}, mode="eot-bench", timeout=3.0)
    b = fm.at_budgets(sweep, latency_budgets=(2.0,), cutoff_budgets=(0.0,))
    assert b == {"fcr@2s": 0.5, "latency@fcr0": 3.0}  # every Gap missed at 0.9: the timeout, not inf
    assert fm.at_budgets(fm.curve(points, {0.9: [None] * 6}), latency_budgets=(), cutoff_budgets=(0.0,)) == {
        "latency@fcr0": INF}  # the two-party mode has no finite median there
