"""The line's enumerations, defined once and free of Django: the pure policy uses them as they
are, and the models build their fields' choices from them (`AutomationLevel.choices`)."""

from __future__ import annotations

import enum


class _ChoicesType(enum.EnumType):
    @property
    def choices(cls) -> list[tuple[str, str]]:
        return [(member.value, member.label) for member in cls]

    @property
    def values(cls) -> list[str]:
        return [member.value for member in cls]

    @property
    def labels(cls) -> list[str]:
        return [member.label for member in cls]


class Choices(enum.StrEnum, metaclass=_ChoicesType):
    """A string enumeration whose members carry a label, as Django's `TextChoices` do (the
    label defaults to the name in title case)."""

    do_not_call_in_templates = enum.nonmember(True)

    def __new__(cls, value: str, label: str | None = None):
        member = str.__new__(cls, value)
        member._value_ = value
        member._label = label
        return member

    @property
    def label(self) -> str:
        return self._label or self.name.replace("_", " ").title()


class AutomationLevel(Choices):
    HUMAN = "human", "Human only"
    SHADOW = "shadow", "Shadow (model runs blind)"
    ASSISTED = "assisted", "AI-assisted"
    PARTIAL = "partial", "Partial automation"
    FULL = "full", "Full automation"


class RolloutMode(Choices):
    SHADOW = "shadow", "Shadow: the challenger predicts off the request path, never decides"
    CANARY = "canary", "Canary: the challenger decides a sticky share of units"


class UnitStatus(Choices):
    PENDING = "pending"
    DECIDED = "decided"


class QueueReason(Choices):
    """Why a unit waits for a human."""

    HUMAN = "human", "Human-only level"
    SHADOW = "shadow", "Shadow level"
    ASSISTED = "assisted", "AI-assisted level"
    DEFERRED = "deferred", "Deferred: the model was not confident enough"
    AUDIT = "audit", "Random audit of the model's automatic decisions"
    NO_MODEL = "no_model", "No model could decide"
    FRAME_CHECK = "frame_check", "Frame check: the model cannot judge this frame"


class PredictionRole(Choices):
    CHAMPION = "champion"
    CHALLENGER_SHADOW = "challenger_shadow", "challenger (shadow)"
    CANARY = "canary"


class Verdict(Choices):
    PASS = "pass"
    FAIL = "fail"


class DecisionReason(Choices):
    AUTOMATIC = "automatic", "Model decided automatically"
    DEFERRED = "deferred", "Human decided a deferred unit"
    AUDIT = "audit", "Human decided an audit unit"
    HUMAN = "human", "Human decided (the level asks for one)"
    OVERRIDE = "override", "Human overrode an earlier decision"


class DecisionSource(Choices):
    MODEL = "model"
    HUMAN = "human", "Person"


class DisagreementKind(Choices):
    IMAGE = "image"
    REGION = "region"
