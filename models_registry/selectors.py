"""Reads over registered model versions."""

from __future__ import annotations

import re

from django.conf import settings

from models_registry.models import ModelVersion

_REFERENCE = re.compile(r"^(?:models:/)?(?P<name>[\w.\-]+?)(?:[/:@](?P<version>\d+|latest))?$")


class UnknownModel(LookupError):
    pass


def model_version_get(*, reference: str) -> ModelVersion:
    """Resolve `NAME`, `NAME:VERSION`, `NAME/VERSION` or `models:/NAME/VERSION` (latest if omitted)."""
    match = _REFERENCE.match(reference.strip())
    if not match:
        raise UnknownModel(
            f"not a model reference: {reference!r} (use NAME, NAME:VERSION or models:/NAME/VERSION)"
        )
    versions = ModelVersion.objects.filter(name=match["name"])
    version = match["version"]
    found = versions.first() if version in (None, "latest") else versions.filter(version=int(version)).first()
    if found is None:
        known = ", ".join(sorted(set(ModelVersion.objects.values_list("name", flat=True)))) or "none yet"
        raise UnknownModel(f"no registered model {reference!r} (registered models: {known})")
    return found


def model_version_active() -> ModelVersion | None:
    """The model the system serves by default: `LOUPE_ACTIVE_MODEL` if set, else the newest one."""
    reference = getattr(settings, "LOUPE_ACTIVE_MODEL", "")
    if reference:
        try:
            return model_version_get(reference=reference)
        except UnknownModel:
            return None
    return ModelVersion.objects.order_by("-created_at", "-id").first()
