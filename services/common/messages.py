"""The messages a rating produces for the learning services, typed once.

The gateway builds each message with these models before it saves the rating (so
anything a receiver would refuse is refused to the trainer, at once, with a
sentence) and the receivers validate what they get with the same models, so the
sender and the receivers cannot disagree about a limit again.

    RatingForOptimizer  → optimizer  POST /ml/update_model   {"results": [...]}
    RatingForEvolution  → evolution  POST /prompts/results   {"results": [...]}
    RatingForReward     → reward     POST /ml/observe        (multipart form + image)

Text fields refuse control characters (a NUL byte is stored by SQLite but refused
by PostgreSQL, so both databases now give the same answer) and blank values.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

ID_MAX = 64
RATER_MAX = 120
VERSION_MAX = 32
COMMENTS_MAX = 4000
OPTION_MAX = 8

_ALLOWED_CONTROL = {"\n", "\r", "\t"}


def _no_control_characters(value: str) -> str:
    if any(ord(ch) < 32 and ch not in _ALLOWED_CONTROL for ch in value) or "\x7f" in value:
        raise ValueError("contiene caracteres de control no permitidos "
                         "(contains control characters)")
    return value


def _single_line(value: str) -> str:
    if any(ch in value for ch in _ALLOWED_CONTROL):
        raise ValueError("debe ser una sola línea (must be a single line)")
    return value


CleanText = Annotated[str, AfterValidator(_no_control_characters)]
"""Free text (comments): any printable text and line breaks; no NUL or other controls."""

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1),
                 AfterValidator(_no_control_characters), AfterValidator(_single_line)]
"""A non-blank, single-line name or identifier (surrounding spaces are removed)."""

Identifier = Annotated[Name, StringConstraints(max_length=ID_MAX)]
Rater = Annotated[Name, StringConstraints(max_length=RATER_MAX)]
Version = Annotated[Name, StringConstraints(max_length=VERSION_MAX)]
Comments = Annotated[CleanText, StringConstraints(max_length=COMMENTS_MAX)]
Stars = Annotated[int, Field(ge=1, le=5)]
Revision = Annotated[int, Field(ge=1, description="1 at first; a trainer's correction is "
                                "sent as a higher revision of the same rating id, which "
                                "replaces the stored one (counted once).")]
Mode = Literal["structure", "surfaces"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class RatingForOptimizer(_Message):
    """One rating as the optimizer learns from it (the rated variant's parameters)."""

    rating_id: Identifier
    experiment_id: Identifier
    image_id: Identifier = Field(description="The original render: ratings of variants of "
                                             "one render share its difficulty.")
    rater: Rater
    parameters: dict[str, Any]
    rating: Stars
    mode: Mode = "structure"
    prompt_version: Version | None = None
    revision: Revision = 1



class RatingForEvolution(_Message):
    """One rating as prompt evolution learns from it (version, stars, comment)."""

    rating_id: Identifier
    experiment_id: Identifier
    option: Annotated[Name, StringConstraints(max_length=OPTION_MAX)]
    version: Version
    mode: Mode = "structure"
    rating: Stars
    comments: Comments | None = None
    rater: Rater
    revision: Revision = 1



class RatingForReward(_Message):
    """The form fields that go with a rated image to the reward service."""

    rating_id: Identifier
    rating: Stars
    experiment_id: Identifier | None = None
    option: Annotated[Name, StringConstraints(max_length=OPTION_MAX)] | None = None
    rater: Rater
    variant_id: Identifier | None = None
    prompt_version: Version | None = None
    mode: Mode | None = None
    revision: Revision = 1
