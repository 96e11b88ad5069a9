"""Agreement statistics against known answers.

The alpha values come from the ``krippendorff`` package's documented examples
(Krippendorff's own data, also in Hayes & Krippendorff 2007) and from small cases
computed by hand in the comments.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from services.gateway import agreement
from services.gateway.agreement import RatingRecord

NAN = math.nan

# The package's documented ordinal example: 4 coders × 12 units, ordinal alpha 0.815.
DOC_EXAMPLE = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]


def records_from_matrix(matrix: list[list[float]]) -> list[RatingRecord]:
    out = []
    for coder, row in enumerate(matrix):
        for unit, value in enumerate(row):
            if not math.isnan(value):
                out.append(RatingRecord(unit=f"u{unit}", trainer=f"c{coder}", rating=int(value)))
    return out


def test_alpha_matches_the_documented_ordinal_example() -> None:
    alpha = agreement.krippendorff_alpha(records_from_matrix(DOC_EXAMPLE))
    assert alpha is not None
    assert round(alpha, 3) == 0.815
    assert agreement.verdict(alpha) == "reliable"


def test_value_counts_drop_units_with_a_single_rating() -> None:
    counts = agreement.value_counts(records_from_matrix(DOC_EXAMPLE))
    # Unit 11 has one rating (coder 2: 3) and is not pairable; the other 11 are.
    assert counts.shape == (11, 5)
    # Unit 5: values 1, 2, 3, 4 once each.
    assert counts.tolist()[5] == [1.0, 1.0, 1.0, 1.0, 0.0]


def test_alpha_by_hand_two_values() -> None:
    # Units (1,1), (2,2), (1,2): coincidences o11 = o22 = 2, o12 = o21 = 1; n1 = n2 = 3,
    # n = 6. D_o ∝ 2/6, D_e ∝ 2·3·3/(6·5) = 0.6 (the ordinal distance between two
    # adjacent values is one constant, which cancels): alpha = 1 - (1/3)/0.6 = 4/9.
    records = [RatingRecord("a", "x", 1), RatingRecord("a", "y", 1),
               RatingRecord("b", "x", 2), RatingRecord("b", "y", 2),
               RatingRecord("c", "x", 1), RatingRecord("c", "y", 2)]
    alpha = agreement.krippendorff_alpha(records)
    assert alpha == pytest.approx(4 / 9)
    assert agreement.verdict(alpha) == "review"


def test_alpha_counts_a_self_repeat_as_two_values_of_the_unit() -> None:
    # Same data as above, but the second rating of each unit comes from the same trainer.
    records = [RatingRecord("a", "x", 1), RatingRecord("a", "x", 1, repeat=True),
               RatingRecord("b", "x", 2), RatingRecord("b", "x", 2, repeat=True),
               RatingRecord("c", "x", 1), RatingRecord("c", "x", 2, repeat=True)]
    assert agreement.krippendorff_alpha(records) == pytest.approx(4 / 9)


def test_perfect_agreement_is_one_and_undefined_cases_are_none() -> None:
    perfect = [RatingRecord(u, t, v) for u, v in (("a", 1), ("b", 5), ("c", 3))
               for t in ("x", "y")]
    assert agreement.krippendorff_alpha(perfect) == pytest.approx(1.0)
    same_value = [RatingRecord(u, t, 4) for u in "ab" for t in "xy"]
    assert agreement.krippendorff_alpha(same_value) is None
    one_unit = [RatingRecord("a", "x", 1), RatingRecord("a", "y", 2)]
    assert agreement.krippendorff_alpha(one_unit) is None
    assert agreement.krippendorff_alpha([]) is None
    assert agreement.verdict(None) is None


def test_verdict_bands() -> None:
    assert agreement.verdict(0.8) == "reliable"
    assert agreement.verdict(0.75) == "acceptable"
    assert agreement.verdict(0.667) == "acceptable"
    assert agreement.verdict(0.5) == "review"
    assert agreement.verdict(-0.2) == "review"


def test_trainer_consistency_by_hand() -> None:
    # Ana rated "a" 4 then 4 (diff 0), "b" 2 then 4 (diff 2), "c" three times 3, 3, 4
    # (pairs: 0, 1, 1). Five pairs: exact 2/5, within one 4/5, mean |diff| 4/5.
    records = [RatingRecord("a", "ana", 4), RatingRecord("a", "ana", 4),
               RatingRecord("b", "ana", 2), RatingRecord("b", "ana", 4),
               RatingRecord("c", "ana", 3), RatingRecord("c", "ana", 3),
               RatingRecord("c", "ana", 4),
               RatingRecord("a", "bea", 5)]  # Bea rated "a" once: no consistency figure
    figures = agreement.trainer_consistency(records)
    assert list(figures) == ["ana"]
    ana = figures["ana"]
    assert ana.pairs == 5
    assert ana.exact == pytest.approx(2 / 5)
    assert ana.within_one == pytest.approx(4 / 5)
    assert ana.mean_abs_diff == pytest.approx(4 / 5)


def test_pairwise_agreement_by_hand() -> None:
    # Shared units: "a" (ana 4, ana 4 | bea 5) → pairs |4-5| twice; "b" (ana 2 | bea 2)
    # → 0. Three pairs over two units: exact 1/3, within one 3/3, mean 2/3.
    # Carla shares only "b" with Bea (|1-2| = 1) and with Ana (|1-2| = 1).
    records = [RatingRecord("a", "ana", 4), RatingRecord("a", "ana", 4),
               RatingRecord("a", "bea", 5), RatingRecord("b", "ana", 2),
               RatingRecord("b", "bea", 2), RatingRecord("b", "carla", 1),
               RatingRecord("z", "ana", 3)]
    pairs = {(p.first, p.second): p for p in agreement.pairwise_agreement(records)}
    assert set(pairs) == {("ana", "bea"), ("ana", "carla"), ("bea", "carla")}
    ab = pairs["ana", "bea"]
    assert (ab.units, ab.figures.pairs) == (2, 3)
    assert ab.figures.exact == pytest.approx(1 / 3)
    assert ab.figures.within_one == pytest.approx(1.0)
    assert ab.figures.mean_abs_diff == pytest.approx(2 / 3)
    assert pairs["bea", "carla"].figures.mean_abs_diff == pytest.approx(1.0)
    assert pairs["bea", "carla"].figures.exact == 0.0


def test_alpha_trend_ends_at_the_overall_alpha_and_grows_in_units() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    records = [RatingRecord(r.unit, r.trainer, r.rating, at=start + timedelta(hours=i))
               for i, r in enumerate(records_from_matrix(DOC_EXAMPLE))]
    trend = agreement.alpha_trend(records, points=4)
    assert 2 <= len(trend) <= 5
    assert [p.units for p in trend] == sorted(p.units for p in trend)
    assert trend[-1].units == 11
    assert trend[-1].alpha == pytest.approx(agreement.krippendorff_alpha(records))
    assert agreement.alpha_trend([RatingRecord("a", "x", 1)]) == []
