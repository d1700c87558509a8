"""Writes of the units' history: a person's comment on a unit."""

from __future__ import annotations

from inspection.history.models import COMMENT_MAX_LENGTH, UnitComment
from inspection.models import Unit


class CommentRejected(ValueError):
    """The comment is empty or too long; the message says which."""


def comment_add(*, unit: Unit, author, body: str) -> UnitComment:
    text = body.strip()
    if not text:
        raise CommentRejected("a comment needs some text")
    if len(text) > COMMENT_MAX_LENGTH:
        raise CommentRejected(f"a comment has at most {COMMENT_MAX_LENGTH} characters, not {len(text)}")
    return UnitComment.objects.create(unit=unit, author=author, body=text)
