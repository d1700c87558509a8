"""The webhook in the OpenAPI schema: what Loupe POSTs to a station's URL on each final decision
(listed under `webhooks` in /api/v1/schema/, shown on /api/v1/docs/)."""

from drf_spectacular.utils import OpenApiWebhook, extend_schema, inline_serializer
from rest_framework import serializers

from inspection.api import ConstantField, UnitSerializer
from inspection.webhooks.services import SIGNATURE_HEADER

EVENT = "unit.decided"

unit_decided = OpenApiWebhook(
    name=EVENT,
    decorator=extend_schema(
        summary="A unit's final decision, POSTed to the station's webhook URL",
        description=(
            "Headers: `X-Loupe-Event: unit.decided`; "
            f"`{SIGNATURE_HEADER}: sha256=<hex>`, the HMAC-SHA256 of the raw body under the "
            "station's webhook secret; `X-Loupe-Delivery`, the delivery's id, the same on every "
            "retry (drop one you have seen). Any 2xx answer ends the delivery; anything else, or no "
            "answer, is retried with exponential backoff (LOUPE_WEBHOOK_MAX_ATTEMPTS times). A "
            "redirect is not followed (it is a failed attempt), and the answer's body is not read."
        ),
        request=inline_serializer(
            name="UnitDecidedEvent",
            fields={
                "event": ConstantField(EVENT),
                "decision_id": serializers.IntegerField(help_text="the decision event's id"),
                "unit": UnitSerializer(),
            },
        ),
        responses={200: None},
    ),
)
