"""Turn tags: audio up to the end of a unit, answered by one of `<COMPLETE>`, `<INCOMPLETE>`, `<BACKCHANNEL>`."""

from __future__ import annotations

from adaptkit.data.manifest import Sample
from adaptkit.errors import AdaptkitError

REQUIRE: tuple[str, ...] = ("label",)
TAGS = {"complete": "<COMPLETE>", "incomplete": "<INCOMPLETE>", "backchannel": "<BACKCHANNEL>"}


def check(sample: Sample) -> None:
    """The label must be one of the three tags."""
    if sample.label not in TAGS:
        raise AdaptkitError(f"{sample.where}: label {sample.label!r} is not one of {', '.join(TAGS)}")


def target(sample: Sample, language: str | None = None) -> str:
    """The tag token for the sample's label."""
    return TAGS[sample.label]
