"""What the labeling and review pages call (session + CSRF; people with the labeler role).

A task comes with everything the page draws: the image, the station's classes, the item's current
label (an inspector's verdict, an earlier accepted label), the model's regions as a
pre-annotation, and the reviewer's feedback if a previous label was sent back.
"""

from __future__ import annotations

import base64
import binascii

from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inspection.authentication import StationDevice
from inspection.claims.views import ClaimNextView, ClaimSerializer, ReleaseView
from inspection.images import image_display
from inspection.models import Station
from labeling.models import Annotation, DatasetItem, LabelSubmission, LabelTask, TaskTier
from labeling.work import (
    LabelConflict,
    LabelRejected,
    Shape,
    label_queue_stats,
    label_submit,
    label_task_claim_next,
    label_task_release,
    review_accept,
    review_claim_next,
    review_fix,
    review_reject,
    review_release,
)


class IsLabeler(BasePermission):
    message = "labeling is for labelers (a person with the labeler role)"

    def has_permission(self, request, view) -> bool:
        if isinstance(request.user, StationDevice):
            return False
        return bool(request.user and request.user.has_perm("labeling.label_item"))


def annotation_body(annotation: Annotation) -> dict:
    body = {
        "id": annotation.id,
        "kind": annotation.kind,
        "label": annotation.label,
        "source": annotation.source,
    }
    if annotation.geometry:
        body["geometry"] = annotation.geometry
    if annotation.mask:
        body["mask_url"] = reverse("labeling-annotation-mask", kwargs={"pk": annotation.id})
    return body


def _model_proposal(item: DatasetItem) -> dict | None:
    if item.unit_id is None:
        return None
    predictions = sorted(item.unit.predictions.all(), key=lambda p: (p.role == "challenger_shadow", p.id))
    if not predictions:
        return None
    prediction = predictions[0]
    return {
        "version": f"{prediction.model_version.name}:{prediction.model_version.version}",
        "score": round(prediction.defect_probability, 4),
        "verdict": prediction.verdict,
        "label": prediction.label,  # its image-level class ("no_defect" for a pass)
        "regions": prediction.regions,
    }


def task_body(task: LabelTask) -> dict:
    item = task.item
    current = [annotation_body(a) for a in item.annotations.all() if a.active]
    return {
        "id": task.id,
        "item": item.id,
        "source_name": item.source_name,
        "unit": item.unit_id,
        "serial": item.unit.serial if item.unit_id else None,
        "image_url": reverse("labeling-item-image", kwargs={"pk": item.id}),
        "width": item.image.width,
        "height": item.image.height,
        "classes": list(item.dataset.classes),
        "tier": task.tier,
        "why": TaskTier(task.tier).label,
        "random_slice": task.random_slice,
        "margin": None if task.margin is None else round(task.margin, 4),
        "feedback": task.feedback,
        "current": current,
        "model": _model_proposal(item),
        "claim_expires_at": task.claim_expires_at.isoformat() if task.claim_expires_at else None,
    }


def _task_loaded(pk: int) -> LabelTask:
    return (
        LabelTask.objects.select_related("item__image", "item__dataset", "item__unit")
        .prefetch_related("item__annotations", "item__unit__predictions__model_version")
        .get(pk=pk)
    )


def submission_body(submission: LabelSubmission) -> dict:
    return {
        "id": submission.id,
        "status": submission.status,
        "author": submission.author.get_username(),
        "no_defect": submission.no_defect,
        "created_at": submission.created_at.isoformat(),
        "annotations": [annotation_body(a) for a in submission.annotations.order_by("id")],
        "review_comment": submission.review_comment,
        "task": task_body(_task_loaded(submission.task_id)),
    }


class ShapeSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=["box", "polygon", "mask", "class"], help_text='"class": the whole image, no geometry'
    )
    label = serializers.CharField(max_length=100)
    geometry = serializers.DictField(required=False, default=dict)
    mask = serializers.CharField(
        required=False, help_text="a brush mask: PNG as base64 or a data: URL, the image's size"
    )

    def validate_mask(self, value: str) -> bytes:
        data = value.split(",", 1)[1] if value.startswith("data:") else value
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise serializers.ValidationError("not base64 data") from None


class LabelSerializer(serializers.Serializer):
    no_defect = serializers.BooleanField(default=False)
    shapes = ShapeSerializer(many=True, required=False, default=list)

    def shapes_of(self) -> list[Shape]:
        return [
            Shape(kind=s["kind"], label=s["label"], geometry=s.get("geometry") or {}, mask_png=s.get("mask"))
            for s in self.validated_data["shapes"]
        ]


class ReviewSerializer(LabelSerializer):
    action = serializers.ChoiceField(choices=["accept", "reject", "fix"])
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


def _station(slug: str) -> Station:
    return get_object_or_404(Station, slug=slug)


def _refused(error: LabelRejected):
    code = status.HTTP_409_CONFLICT if isinstance(error, LabelConflict) else status.HTTP_400_BAD_REQUEST
    return Response({"detail": str(error)}, status=code)


_ANY = inline_serializer("LabelingObject", {"id": serializers.IntegerField()})


@extend_schema_view(
    post=extend_schema(
        request=ClaimSerializer, responses={200: _ANY, 204: None}, summary="Claim the next labeling task"
    )
)
class TaskClaimNext(ClaimNextView):
    permission_classes = [IsAuthenticated, IsLabeler]

    def claim_next(self, *, station: Station, user, exclude: list[int]) -> LabelTask | None:
        return label_task_claim_next(station=station, user=user, exclude=exclude)

    def claimed_body(self, claimed: LabelTask) -> dict:
        return task_body(_task_loaded(claimed.pk))


@extend_schema_view(
    post=extend_schema(request=None, responses={204: None}, summary="Give a labeling task back (skip)")
)
class TaskRelease(ReleaseView):
    permission_classes = [IsAuthenticated, IsLabeler]
    model = LabelTask
    refusal = "task {pk} is not open and claimed by you"

    def release(self, row: LabelTask, *, user) -> bool:
        return label_task_release(task=row, user=user)


class TaskSubmit(APIView):
    permission_classes = [IsAuthenticated, IsLabeler]

    @extend_schema(request=LabelSerializer, responses={201: _ANY}, summary="Submit a label for review")
    def post(self, request: Request, pk: int) -> Response:
        task = get_object_or_404(LabelTask, pk=pk)
        serializer = LabelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            submission = label_submit(
                task=task,
                user=request.user,
                shapes=serializer.shapes_of(),
                no_defect=serializer.validated_data["no_defect"],
            )
        except LabelRejected as error:
            return _refused(error)
        return Response({"id": submission.id, "status": submission.status}, status=status.HTTP_201_CREATED)


@extend_schema_view(
    post=extend_schema(
        request=ClaimSerializer,
        responses={200: _ANY, 204: None},
        summary="Claim the next label to review",
    )
)
class ReviewClaimNext(ClaimNextView):
    permission_classes = [IsAuthenticated, IsLabeler]

    def claim_next(self, *, station: Station, user, exclude: list[int]) -> LabelSubmission | None:
        return review_claim_next(station=station, user=user, exclude=exclude)

    def claimed_body(self, claimed: LabelSubmission) -> dict:
        return submission_body(claimed)


@extend_schema_view(
    post=extend_schema(request=None, responses={204: None}, summary="Give a label to review back (skip)")
)
class ReviewRelease(ReleaseView):
    permission_classes = [IsAuthenticated, IsLabeler]
    model = LabelSubmission
    refusal = "submission {pk} is not waiting and claimed by you"

    def release(self, row: LabelSubmission, *, user) -> bool:
        return review_release(submission=row, user=user)


class Review(APIView):
    permission_classes = [IsAuthenticated, IsLabeler]

    @extend_schema(
        request=ReviewSerializer,
        responses={200: _ANY},
        summary="Accept, reject (with a comment) or fix a label",
    )
    def post(self, request: Request, pk: int) -> Response:
        submission = get_object_or_404(LabelSubmission, pk=pk)
        serializer = ReviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            if data["action"] == "accept":
                result = review_accept(submission=submission, user=request.user, comment=data["comment"])
            elif data["action"] == "reject":
                result = review_reject(submission=submission, user=request.user, comment=data["comment"])
            else:
                result = review_fix(
                    submission=submission,
                    user=request.user,
                    shapes=serializer.shapes_of(),
                    no_defect=data["no_defect"],
                    comment=data["comment"],
                )
        except LabelRejected as error:
            return _refused(error)
        return Response({"id": result.id, "status": result.status})


class LabelQueueFigures(APIView):
    permission_classes = [IsAuthenticated, IsLabeler]

    @extend_schema(
        responses={200: inline_serializer("LabelQueueFigures", {"open": serializers.IntegerField()})},
        summary="Open tasks by reason, labels waiting for review, labels done",
    )
    def get(self, request: Request, slug: str) -> Response:
        stats = label_queue_stats(station=_station(slug))
        return Response(
            {
                "open": stats.open,
                "open_by_reason": {TaskTier(tier).label: n for tier, n in sorted(stats.open_by_tier.items())},
                "random_slice_open": stats.random_slice_open,
                "in_review": stats.in_review,
                "done": stats.done,
            }
        )


def _may_see_images(request: Request) -> None:
    if isinstance(request.user, StationDevice) or not (
        request.user.has_perm("labeling.label_item") or request.user.has_perm("inspection.view_unit")
    ):
        raise PermissionDenied("viewing data set images needs the labeler role")


class ItemImage(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={(200, "image/*"): bytes}, summary="A data set item's image")
    def get(self, request: Request, pk: int) -> FileResponse:
        _may_see_images(request)
        item = get_object_or_404(DatasetItem.objects.select_related("image"), pk=pk)
        picture, content_type = image_display(stored=item.image.file, sha256=item.image.sha256)
        response = FileResponse(picture, content_type=content_type)
        response["Cache-Control"] = "private, max-age=86400, immutable"
        return response


class AnnotationMask(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={(200, "image/png"): bytes}, summary="A brush mask annotation's PNG")
    def get(self, request: Request, pk: int) -> FileResponse:
        _may_see_images(request)
        annotation = get_object_or_404(Annotation, pk=pk)
        if not annotation.mask:
            raise ValidationError({"detail": f"annotation {pk} is not a brush mask"})
        response = FileResponse(annotation.mask.open("rb"), content_type="image/png")
        response["Cache-Control"] = "private, max-age=86400, immutable"
        return response
