"""Turn metrics against hand-computed values and scikit-learn."""

from __future__ import annotations

import random

import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

from adaptkit.eval import turn_metrics as tm


def test_binary_by_hand():
    y = [1, 1, 0, 0, 1]
    p = [0.9, 0.4, 0.6, 0.1, 0.5]
    # At 0.5 (>=): predicted [1, 0, 1, 0, 1] -> tp 2 (#0, #4), fn 1 (#1), fp 1 (#2), tn 1 (#3).
    m = tm.binary_metrics(y, p, 0.5)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 1, 1, 1)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["accuracy_complete"] == pytest.approx(2 / 3) and m["accuracy_incomplete"] == pytest.approx(1 / 2)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    # At 0.95 nothing is predicted complete: precision is 0 by convention, not a crash.
    m = tm.binary_metrics(y, p, 0.95)
    assert (m["precision"], m["recall"], m["accuracy_incomplete"]) == (0.0, 0.0, 1.0)


def test_binary_and_sweep_match_sklearn():
    rng = random.Random(3)
    y = [rng.random() < 0.4 for _ in range(300)]
    p = [min(1.0, max(0.0, rng.gauss(0.65 if t else 0.35, 0.2))) for t in y]
    sweep = tm.threshold_sweep(y, p)
    assert [r["threshold"] for r in sweep] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    for row in sweep:
        pred = [q >= row["threshold"] for q in p]
        assert row["accuracy"] == pytest.approx(accuracy_score(y, pred))
        assert row["precision"] == pytest.approx(precision_score(y, pred, zero_division=0))
        assert row["recall"] == pytest.approx(recall_score(y, pred))
        assert row["f1"] == pytest.approx(f1_score(y, pred, zero_division=0))
        assert row["accuracy_incomplete"] == pytest.approx(recall_score(y, pred, pos_label=False))


def test_probability_distribution():
    d = tm.probability_distribution([1, 1, 0, 1], [0.9, 0.4, 0.6, 0.7])
    assert d["complete"] == {"n": 3, "mean": pytest.approx(2.0 / 3), "median": 0.7, "min": 0.4, "max": 0.9}
    assert d["incomplete"]["median"] == 0.6
    assert tm.probability_distribution([1], [0.3])["incomplete"] == {"n": 0, "mean": None, "median": None,
                                                                     "min": None, "max": None}


def test_multiclass_by_hand():
    truth = ["COMPLETE", "INCOMPLETE", "COMPLETE", "BACKCHANNEL"]
    pred = ["COMPLETE", "COMPLETE", None, "BACKCHANNEL"]
    m = tm.multiclass_metrics(truth, pred)
    # COMPLETE: predicted twice, right once (P 1/2); 2 true, found once (R 1/2) -> F1 1/2.
    # INCOMPLETE: never predicted, 1 true -> 0. BACKCHANNEL: 1/1 -> 1. Macro = (0.5 + 0 + 1) / 3.
    assert m["per_class"]["COMPLETE"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["per_class"]["INCOMPLETE"]["f1"] == 0.0 and m["per_class"]["BACKCHANNEL"]["f1"] == 1.0
    assert m["macro_f1"] == pytest.approx(0.5) and m["accuracy"] == 0.5 and m["other"] == 1
    assert m["confusion"]["matrix"] == [[1, 0, 0, 1], [1, 0, 0, 0], [0, 0, 1, 0]]
    assert m["confusion"]["predicted"][-1] == tm.OTHER


def test_multiclass_matches_sklearn():
    rng = random.Random(5)
    labels = list(tm.TURN_TAGS)
    truth = [rng.choice(labels) for _ in range(400)]
    pred = [t if rng.random() < 0.6 else rng.choice(labels + ["junk"]) for t in truth]
    m = tm.multiclass_metrics(truth, pred)
    mapped = [p if p in labels else tm.OTHER for p in pred]
    f1 = f1_score(truth, mapped, labels=labels, average=None)
    for k, lab in enumerate(labels):
        assert m["per_class"][lab]["f1"] == pytest.approx(f1[k])
    assert m["macro_f1"] == pytest.approx(f1_score(truth, mapped, labels=labels, average="macro"))
    assert m["confusion"]["matrix"] == confusion_matrix(truth, mapped, labels=labels + [tm.OTHER])[:3].tolist()
    assert m["accuracy"] == pytest.approx(accuracy_score(truth, mapped))


def test_multiclass_absent_class_and_bad_input():
    m = tm.multiclass_metrics(["COMPLETE", "INCOMPLETE"], ["COMPLETE", "INCOMPLETE"])
    assert m["macro_f1"] == 1.0  # BACKCHANNEL absent on both sides does not count as F1 0
    with pytest.raises(ValueError, match="outside"):
        tm.multiclass_metrics(["MAYBE"], ["COMPLETE"])
    with pytest.raises(ValueError):
        tm.binary_metrics([1, 0], [0.5])
