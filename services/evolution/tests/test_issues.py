"""Comment analysis: categories in Spanish and English, accents and typos, severity."""

from __future__ import annotations

import pytest

from services.evolution.issues import RatedComment, analyse, categorise, edit_distance, normalise


@pytest.mark.parametrize(
    ("comment", "expected"),
    [
        ("Se ve muy PLANO, sin profundidad", {"flat"}),
        ("looks flat, no depth", {"flat"}),
        ("Iluminación quemada", {"lighting"}),
        ("iluminacion muy artificial", {"lighting"}),
        ("iluminacoin rara", {"lighting"}),  # transposed letters
        ("ilminacion mala", {"lighting"}),  # a letter missing inside the stem
        ("colores desaturados", {"colors"}),
        ("washed out colours", {"colors"}),
        ("la textrua parece plástico", {"textures"}),
        ("faltan sombras", {"shadows"}),
        ("sombars duras", {"shadows"}),
        ("the shadows are wrong", {"shadows"}),
        ("han cambiado los colores del sofá", {"structure"}),
        ("el suelo tiene otro material", {"structure"}),
        ("movieron la mesa y la perspectiva está deformada", {"structure"}),
        ("walls are warped", {"structure"}),
        ("ruido y artefactos", {"artifacts"}),
        ("grainy, jpeg artifacts", {"artifacts"}),
        ("muy bien", set()),
        ("perfect, very realistic", set()),
        ("the plant looks fine", set()),  # "plant" is not "plano"
        ("", set()),
        # Negation cancels a named defect, not the mention of a missing quality.
        ("no se ve plano", set()),
        ("no tiene profundidad", {"flat"}),
        ("sin sombras", {"shadows"}),
        ("sin ruido ni artefactos, muy bien", set()),
        ("nothing was moved or changed", set()),
        ("no han cambiado los colores, pero están desaturados", {"colors"}),
        ("han cambiado los colores", {"structure"}),
        ("no se ve nada realista, muy plano", {"flat"}),  # the comma ends the negation
        ("not too dark, but the room looks flat", {"flat"}),
        ("it isn't dark", set()),
        # A quality word in a clause that negates the category's defect is praise.
        ("no ha cambiado nada de la estructura", set()),
        ("la iluminación no está quemada", set()),
        ("la iluminación no está quemada, pero la estructura está torcida", {"structure"}),
    ],
)
def test_categorise(comment: str, expected: set[str]) -> None:
    assert categorise(comment) == expected


def test_normalise_and_distance() -> None:
    assert normalise("¡Iluminación, ÁNGULO y Ñandú!") == ["iluminacion", "angulo", "y", "nandu"]
    assert edit_distance("textura", "textrua") == 1  # transposition counts once
    assert edit_distance("sombra", "sombra") == 0
    assert edit_distance("plano", "estructura", limit=3) == 3


def test_report_counts_severity_examples_and_keeps_low_rated_raw_comments() -> None:
    rated = [
        RatedComment(2, "se ve plano", "structure"),
        RatedComment(1, "Plano y sin sombras", "structure"),
        RatedComment(4, "bien, algo plano", "structure"),
        RatedComment(3, "la luz es rara", "structure"),
        RatedComment(5, None, "structure"),
        RatedComment(2, "no me gusta nada", "structure"),
    ]
    report = analyse(rated)
    by_key = {i.key: i for i in report.issues}
    assert (report.samples, report.commented) == (6, 5)
    flat = by_key["flat"]
    assert flat.count == 3
    assert flat.mean_rating == pytest.approx((2 + 1 + 4) / 3, abs=1e-3)
    assert flat.severity == pytest.approx((5 - 7 / 3) / 4, abs=1e-3)
    assert flat.share == pytest.approx(3 / 5)
    assert flat.examples == ["se ve plano", "Plano y sin sombras", "bien, algo plano"]
    assert by_key["shadows"].count == 1 and by_key["lighting"].count == 1
    assert by_key["colors"].count == 0 and by_key["colors"].severity is None
    assert report.top(1)[0].key == "flat"
    assert [c["comment"] for c in report.low_rated_comments] == [
        "se ve plano", "Plano y sin sombras", "la luz es rara", "no me gusta nada"]
    assert report.unmatched_comments == ["no me gusta nada"]
