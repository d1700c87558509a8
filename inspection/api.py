"""The line API: `POST /api/v1/units/`, `GET /api/v1/units/{id}/?wait=N`, and the human decision.

Views validate input, call one service and return its result. Device keys (`Authorization:
Api-Key ...`) post and read their own station's units; signed-in inspectors decide units.
"""

from __future__ import annotations

import json
import logging
import time

import redis
from django.conf import settings
from django.http import FileResponse
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inspection.authentication import StationDevice
from inspection.enums import DecisionSource, UnitStatus, Verdict
from inspection.events import redis_client, unit_channel
from inspection.history.search import CursorInvalid, UnitFilter, units_page, units_search
from inspection.history.selectors import units_for_cards
from inspection.images import THUMBNAIL_WIDTH, ImageRejected, image_display, image_thumbnail
from inspection.models import Station
from inspection.parsers import JSONParser
from inspection.selectors import UnitNotFound, unit_get, unit_representation
from inspection.services.decisions import DecisionConflict, DecisionRejected, HumanRegion, decision_record
from inspection.services.units import (
    IdempotencyConflict,
    IdempotencyMismatch,
    StationRetired,
    StorageFull,
    unit_submit,
)

logger = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "HTTP_IDEMPOTENCY_KEY"


def _station_scope(request: Request) -> Station | None:
    """A device key's station (it sees nothing else); None for a signed-in person."""
    return request.user.station if isinstance(request.user, StationDevice) else None


def _viewer_scope(request: Request) -> Station | None:
    """`_station_scope` for reading units: a person needs a role that may see units (an account
    with no role sees none)."""
    station = _station_scope(request)
    if station is None and not request.user.has_perm("inspection.view_unit"):
        raise PermissionDenied("seeing units needs the inspector, labeler or supervisor role")
    return station


class ConstantField(serializers.CharField):
    """A string that is always `value`, such as an event's type: `const` in the schema."""

    default_error_messages = {"other": "must be {expected!r}"}

    def __init__(self, value: str, **kwargs) -> None:
        self.value = value
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> str:
        text = super().to_internal_value(data)
        if text != self.value:
            self.fail("other", expected=self.value)
        return text


class ConstantFieldSchema(OpenApiSerializerFieldExtension):
    target_class = ConstantField

    def map_serializer_field(self, auto_schema, direction) -> dict:
        return {"type": "string", "const": self.target.value}


@extend_schema_field(OpenApiTypes.STR)
class MetadataField(serializers.Field):
    """A JSON object, sent as a JSON string in a multipart form: at most
    `LOUPE_MAX_METADATA_BYTES` as sent, nested at most `LOUPE_MAX_METADATA_DEPTH` deep (checked
    before it is parsed), and no NaN or Infinity (JSON has no such numbers; PostgreSQL refuses them)."""

    default_error_messages = {
        "invalid_json": "metadata is not valid JSON: {error}",
        "not_object": "metadata must be a JSON object, not {kind}",
        "too_large": "metadata is {size:,} bytes; the limit is {limit:,} bytes",
        "too_deep": "metadata is nested more than {limit} levels deep",
        "not_a_number": "metadata holds {constant}, which is not a JSON number",
    }

    def to_internal_value(self, data):
        if not isinstance(data, str):
            try:
                data = json.dumps(data, allow_nan=False)
            except ValueError:
                self.fail("not_a_number", constant="NaN or Infinity")
            except RecursionError:
                self.fail("too_deep", limit=settings.LOUPE_MAX_METADATA_DEPTH)
        size = len(data.encode())
        if size > settings.LOUPE_MAX_METADATA_BYTES:
            self.fail("too_large", size=size, limit=settings.LOUPE_MAX_METADATA_BYTES)
        if json_nesting_exceeds(data, settings.LOUPE_MAX_METADATA_DEPTH):
            self.fail("too_deep", limit=settings.LOUPE_MAX_METADATA_DEPTH)
        try:
            value = json.loads(data, parse_constant=_refuse_constant)
        except _NotANumber as constant:
            self.fail("not_a_number", constant=str(constant))
        except json.JSONDecodeError as error:
            self.fail("invalid_json", error=str(error))
        if not isinstance(value, dict):
            self.fail("not_object", kind=type(value).__name__)
        return value

    def to_representation(self, value):
        return value


class _NotANumber(ValueError):
    pass


def _refuse_constant(name: str):
    raise _NotANumber(name)


def json_nesting_exceeds(text: str, limit: int) -> bool:
    """Whether the JSON `text` opens more than `limit` arrays or objects inside one another,
    found without parsing it (Python's parser would recurse once a level)."""
    depth = 0
    in_string = escaped = False
    for character in text:
        if in_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                in_string = False
        elif character == '"':
            in_string = True
        elif character in "[{":
            depth += 1
            if depth > limit:
                return True
        elif character in "]}":
            depth -= 1
    return False


class UnitSubmitSerializer(serializers.Serializer):
    image = serializers.FileField(allow_empty_file=False, help_text="JPEG, PNG, BMP, TIFF or WebP")
    serial = serializers.CharField(max_length=200, help_text="The unit's serial number")
    captured_at = serializers.DateTimeField(required=False, help_text="When the camera took the image")
    metadata = MetadataField(required=False, help_text='A JSON object kept with the unit, e.g. {"lot": 7}')

    def validate_serial(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("serial must not be blank")
        return value.strip()


class RegionSerializer(serializers.Serializer):
    x = serializers.FloatField()
    y = serializers.FloatField()
    width = serializers.FloatField()
    height = serializers.FloatField()
    label = serializers.CharField(max_length=100)


class RleMaskSerializer(serializers.Serializer):
    size = serializers.ListField(child=serializers.IntegerField(), help_text="[height, width] of the box")
    counts = serializers.ListField(child=serializers.IntegerField(), help_text="row-major run lengths")


class UnitRegionSerializer(RegionSerializer):
    """A region as a unit shows it: a person's, or the model's with its score (and mask)."""

    score = serializers.FloatField(required=False, help_text="the model's regions only")
    mask_rle = RleMaskSerializer(required=False, help_text="its mask inside the box, when the model has one")


class DecisionSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(choices=Verdict.values)
    defect_classes = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    regions = RegionSerializer(many=True, required=False)


class UnitSerializer(serializers.Serializer):
    """The unit as the API shows it (`inspection.selectors.unit_representation`), for the schema."""

    id = serializers.IntegerField()
    serial = serializers.CharField()
    station = serializers.CharField()
    status = serializers.ChoiceField(choices=UnitStatus.values)
    decision = serializers.ChoiceField(choices=Verdict.values, allow_null=True)
    decided_by = serializers.ChoiceField(choices=DecisionSource.values, allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    automation_level = serializers.CharField()
    model_version = serializers.CharField(allow_null=True)
    score = serializers.FloatField(
        required=False, allow_null=True, help_text="omitted for blind units; null without a prediction"
    )
    regions = UnitRegionSerializer(many=True, required=False, help_text="omitted for blind units")
    queue_reason = serializers.CharField(required=False)
    frame_check = serializers.CharField(
        required=False, help_text="why the frame check kept the frame from the model, when it did"
    )
    received_at = serializers.DateTimeField()
    captured_at = serializers.DateTimeField(allow_null=True)
    width = serializers.IntegerField(
        help_text="the frame's width as a person sees it; regions are in its pixels"
    )
    height = serializers.IntegerField()
    url = serializers.CharField()
    image_url = serializers.CharField()


UNIT_PAGE_SCHEMA = inline_serializer(
    name="UnitPage",
    fields={
        "next": serializers.URLField(allow_null=True, help_text="the next (older) page, by cursor"),
        "previous": serializers.URLField(allow_null=True, help_text="the previous (newer) page"),
        "results": UnitSerializer(many=True),
    },
)


# When a line should try again after a full disk (an operator must free space) or a database outage.
STORAGE_RETRY_AFTER_SECONDS = 30
REFUSAL_SCHEMA = inline_serializer(name="Refusal", fields={"detail": serializers.CharField()})
TOO_LARGE_SCHEMA = inline_serializer(
    name="TooLarge",
    fields={
        "detail": serializers.CharField(help_text="what was too large, and the limit in bytes"),
        "code": serializers.ChoiceField(choices=["request_too_large", "fields_too_large"]),
        "limit": serializers.IntegerField(),
    },
)
UNIT_SUBMIT_REFUSALS = {
    400: OpenApiResponse(
        OpenApiTypes.OBJECT,
        description="A field is invalid (the image, the serial, captured_at, metadata too large, "
        "too deep or holding NaN): each field's name -> its problems",
    ),
    409: OpenApiResponse(REFUSAL_SCHEMA, description="The Idempotency-Key was first used for another serial"),
    413: OpenApiResponse(
        TOO_LARGE_SCHEMA,
        description="The body is over LOUPE_MAX_REQUEST_BYTES (refused before it is read), or the "
        "form's text fields over DATA_UPLOAD_MAX_MEMORY_SIZE",
    ),
    422: OpenApiResponse(
        inline_serializer(
            name="IdempotencyMismatch",
            fields={
                "detail": serializers.CharField(),
                "differs": serializers.ListField(
                    child=serializers.ChoiceField(choices=["image", "metadata"])
                ),
            },
        ),
        description="The Idempotency-Key and serial were first sent with another image or other "
        "metadata: nothing is replayed or kept",
    ),
    503: OpenApiResponse(
        inline_serializer(
            name="Unavailable",
            fields={
                "detail": serializers.CharField(),
                "code": serializers.ChoiceField(choices=["storage_full", "database_unavailable"]),
            },
        ),
        description="Loupe cannot store the unit now (the media disk is full, the database is down): "
        "nothing was kept; send the same request again after Retry-After seconds",
    ),
}


class UnitListCreate(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": UnitSubmitSerializer},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="A retry with the same key (same serial, image and metadata) returns the first "
                "response; no second unit",
            )
        ],
        responses={201: UnitSerializer, **UNIT_SUBMIT_REFUSALS},
        summary="Submit a unit's image",
        operation_id="units_create",
    )
    def post(self, request: Request) -> Response:
        station = _station_scope(request)
        if station is None:
            raise PermissionDenied(
                "units are posted with a station's device key (Authorization: Api-Key ...)"
            )
        serializer = UnitSubmitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        idempotency_key = request.META.get(IDEMPOTENCY_HEADER, "").strip() or None
        if idempotency_key is not None and len(idempotency_key) > 200:
            raise ValidationError({"Idempotency-Key": ["at most 200 characters"]})
        upload = data["image"]
        try:
            submission = unit_submit(
                station=station,
                serial=data["serial"],
                image_data=upload.read(),
                filename=upload.name or "",
                captured_at=data.get("captured_at"),
                metadata=data.get("metadata"),
                idempotency_key=idempotency_key,
            )
        except ImageRejected as error:
            raise ValidationError({"image": [str(error)]}, code=error.code) from error
        except IdempotencyConflict as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        except IdempotencyMismatch as error:
            return Response(
                {"detail": str(error), "differs": error.differs}, status=status.HTTP_422_UNPROCESSABLE_ENTITY
            )
        except StorageFull as error:
            return Response(
                {"detail": error.strerror, "code": "storage_full"},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
                headers={"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)},
            )
        except StationRetired as error:
            return Response({"detail": str(error), "station": station.slug}, status=status.HTTP_410_GONE)
        headers = {"Location": submission.body["url"]}
        if submission.replayed:
            headers["Idempotent-Replayed"] = "true"
        return Response(submission.body, status=status.HTTP_201_CREATED, headers=headers)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=UnitStatus.values),
            *(
                OpenApiParameter(
                    name, OpenApiTypes.STR, description=str(field.help_text or field.label or "")
                )
                for name, field in UnitFilter.base_fields.items()
            ),
            OpenApiParameter("cursor", OpenApiTypes.STR, description="from a page's next or previous URL"),
        ],
        responses={200: UNIT_PAGE_SCHEMA},
        summary="List and search units, newest first (a device key: its station's)",
        description="The units page's filters (serial prefix, received_from/received_to, within, verdict "
        "incl. pending, decided_by, reason, model, disagreement, alarm), pages of 48 by cursor.",
        operation_id="units_list",
    )
    def get(self, request: Request) -> Response:
        unit_status = request.query_params.get("status")
        if unit_status and unit_status not in UnitStatus.values:
            raise ValidationError({"status": [f"must be one of {', '.join(UnitStatus.values)}"]})
        station = _viewer_scope(request)
        search = UnitFilter(request.query_params)
        if not search.is_valid():
            raise ValidationError(search.error_summary())
        units = units_search(filters=search.cleaned_data, station=station)
        if unit_status:
            units = units.filter(status=unit_status)
        try:
            page = units_page(units_for_cards(units), cursor=request.query_params.get("cursor"))
        except CursorInvalid as error:
            raise ValidationError({"cursor": [str(error)]}) from error
        return Response(
            {
                "next": _page_link(request, page.older),
                "previous": _page_link(request, page.newer),
                "results": [unit_representation(unit=unit) for unit in page.units],
            }
        )


def _page_link(request: Request, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    query = request.query_params.copy()
    query["cursor"] = cursor
    return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")


class UnitDetail(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "wait",
                OpenApiTypes.INT,
                description="Long-poll: wait up to N seconds (at most 30) for a pending unit's decision",
            )
        ],
        responses={200: UnitSerializer},
        summary="A unit and its current decision",
        operation_id="units_retrieve",
    )
    def get(self, request: Request, pk: int) -> Response:
        station = _viewer_scope(request)
        wait = _wait_seconds(request.query_params.get("wait"))
        unit = _unit_or_404(pk, station)
        if unit.status == UnitStatus.PENDING and wait > 0:
            unit = _wait_for_decision(unit, station, wait)
        return Response(unit_representation(unit=unit))


class UnitDecision(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    @extend_schema(
        request=DecisionSerializer, responses={201: UnitSerializer}, summary="Decide a unit (inspector)"
    )
    def post(self, request: Request, pk: int) -> Response:
        if _station_scope(request) is not None:
            raise PermissionDenied("a device key cannot decide units; inspectors do")
        if not request.user.has_perm("inspection.decide_unit"):
            raise PermissionDenied("deciding units needs the inspector role")
        serializer = DecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        unit = _unit_or_404(pk, None)
        try:
            decision_record(
                unit=unit,
                user=request.user,
                verdict=data["verdict"],
                defect_classes=data.get("defect_classes", []),
                regions=[HumanRegion(**region) for region in data.get("regions", [])],
            )
        except DecisionConflict as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        except DecisionRejected as error:
            raise ValidationError({"detail": str(error)}) from error
        return Response(unit_representation(unit=unit_get(unit_id=pk)), status=status.HTTP_201_CREATED)


class UnitImage(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "size",
                OpenApiTypes.STR,
                enum=["full", "thumbnail"],
                description=f"thumbnail: a JPEG {THUMBNAIL_WIDTH} px wide of the same picture",
            )
        ],
        responses={(200, "image/*"): OpenApiTypes.BINARY},
        summary="The unit's image as a person sees it",
        description="The posted file, or (for TIFF, 16-bit, CMYK or EXIF-rotated images, which a "
        "browser would paint differently) a PNG of the very picture the model judged.",
    )
    def get(self, request: Request, pk: int) -> FileResponse:
        size = request.query_params.get("size", "full")
        if size not in ("full", "thumbnail"):
            raise ValidationError({"size": [f"must be full or thumbnail, not {size!r}"]})
        unit = _unit_or_404(pk, _viewer_scope(request))
        if size == "thumbnail":
            picture = image_thumbnail(stored=unit.image, sha256=unit.image_sha256)
            content_type = "image/jpeg"
        else:
            picture, content_type = image_display(stored=unit.image, sha256=unit.image_sha256)
        response = FileResponse(picture, content_type=content_type)
        response["Cache-Control"] = "private, max-age=86400, immutable"
        return response


def _wait_seconds(raw: str | None) -> float:
    if raw in (None, ""):
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        raise ValidationError({"wait": [f"must be a number of seconds, not {raw!r}"]}) from None
    limit = settings.LOUPE_LONG_POLL_MAX_SECONDS
    if not 0 <= wait <= limit:
        raise ValidationError({"wait": [f"must be between 0 and {limit} seconds"]})
    return wait


def _unit_or_404(pk: int, station: Station | None):
    try:
        return unit_get(unit_id=pk, station=station)
    except UnitNotFound as error:
        raise NotFound(str(error)) from error


def _wait_for_decision(unit, station: Station | None, wait: float):
    """Block until the unit is decided or `wait` runs out. Woken by the decision's Redis
    message; re-reads the database at least every second whatever Redis does."""
    deadline = time.monotonic() + wait
    pubsub = redis_client().pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(unit_channel(unit.id))
    except redis.RedisError:
        logger.warning("Redis unavailable for long-poll wake-ups; polling the database instead")
        pubsub = None
    try:
        while True:
            unit = _unit_or_404(unit.id, station)
            remaining = deadline - time.monotonic()
            if unit.status != UnitStatus.PENDING or remaining <= 0:
                return unit
            if pubsub is None:
                time.sleep(min(0.25, remaining))
                continue
            try:
                pubsub.get_message(timeout=min(1.0, remaining))
            except redis.RedisError:
                pubsub = None
    finally:
        if pubsub is not None:
            pubsub.close()
