"""The claim and release endpoints of every queue (see `inspection.claims`).

- `ClaimNextView`: `POST .../stations/<slug>/.../claim/` with `{"exclude": [ids]}` (optional):
  200 and the claimed row as the page shows it, 204 when nothing is left to claim, 404 for an
  unknown station, 400 for a bad body.
- `ClaimView`: `POST .../<pk>/claim/`: claim that row (going back to one skipped): 200 and the
  row as the page shows it, 409 with the reason when someone else holds it or it left the queue,
  404 for an unknown row.
- `ReleaseView`: `POST .../<pk>/release/`: 204 once given back, 400 when the caller does not
  hold the row's claim, 404 for an unknown row.

A queue's endpoints subclass them with their permissions, their service calls and the body of a
claimed row; their OpenAPI descriptions go on with `extend_schema_view(post=extend_schema(...))`.
"""

from __future__ import annotations

from django.db.models import Model
from django.shortcuts import get_object_or_404
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inspection.claims import ClaimRefused
from inspection.models import Station


class ClaimSerializer(serializers.Serializer):
    exclude = serializers.ListField(
        child=serializers.IntegerField(), required=False, max_length=200, help_text="ids not to offer"
    )


# No docstrings on the two views: drf-spectacular would print them in every subclass's operation.
class ClaimNextView(APIView):
    # Claim the next row of a station's queue for the caller.

    def claim_next(self, *, station: Station, user, exclude: list[int]) -> Model | None:
        raise NotImplementedError

    def claimed_body(self, claimed: Model) -> dict:
        raise NotImplementedError

    def post(self, request: Request, slug: str) -> Response:
        station = get_object_or_404(Station, slug=slug)
        serializer = ClaimSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        claimed = self.claim_next(
            station=station, user=request.user, exclude=serializer.validated_data.get("exclude", [])
        )
        if claimed is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(self.claimed_body(claimed))


class ClaimView(APIView):
    # Claim one given row of a queue for the caller.

    model: type[Model]

    def claim(self, row: Model, *, user) -> Model:
        raise NotImplementedError

    def claimed_body(self, claimed: Model) -> dict:
        raise NotImplementedError

    def post(self, request: Request, pk: int) -> Response:
        row = get_object_or_404(self.model, pk=pk)
        try:
            claimed = self.claim(row, user=request.user)
        except ClaimRefused as refusal:
            return Response({"detail": str(refusal)}, status=status.HTTP_409_CONFLICT)
        return Response(self.claimed_body(claimed))


class ReleaseView(APIView):
    # Give a claimed row back to its queue (skip).

    model: type[Model]
    # Why a release was refused, formatted with the row's pk.
    refusal: str

    def release(self, row: Model, *, user) -> bool:
        raise NotImplementedError

    def post(self, request: Request, pk: int) -> Response:
        row = get_object_or_404(self.model, pk=pk)
        if not self.release(row, user=request.user):
            raise ValidationError({"detail": self.refusal.format(pk=pk)})
        return Response(status=status.HTTP_204_NO_CONTENT)
