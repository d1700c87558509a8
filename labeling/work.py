"""The labelers' work: claim a task, submit a label, review others' labels.

Tasks and submissions are claimed as the inspector's units are (`inspection.claims`: row locks
with `SELECT ... FOR UPDATE SKIP LOCKED`, an expiry of `LOUPE_LABEL_CLAIM_SECONDS`), so two
labelers never work on the same task and two reviewers never review the same submission. A
submission's annotation rows are inactive until a reviewer other than its author accepts them:
only accepted labels train.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from inspection import claims
from labeling.models import (
    Annotation,
    AnnotationKind,
    DatasetItem,
    LabelingSettings,
    LabelSubmission,
    LabelTask,
    SubmissionStatus,
    TaskStatus,
)
from models_registry.ml.types import NO_DEFECT

MAX_POLYGON_POINTS = 2000
MAX_SHAPES = 200


class LabelRejected(ValueError):
    """The label or review is not valid; the message says why. Nothing was written."""


class LabelConflict(LabelRejected):
    """Someone else holds the task or submission, or it has moved on."""


@dataclass(frozen=True)
class Shape:
    """One label of the image: a box `{x, y, width, height}`, a polygon `{points}`, a brush mask
    (PNG bytes the size of the image, non-zero = defect), or the whole image ("class": no
    geometry, no mask), with its defect class."""

    kind: str
    label: str
    geometry: dict = field(default_factory=dict)
    mask_png: bytes | None = None


# -- labeling --------------------------------------------------------------------------------------


def label_task_claim_next(
    *,
    station,
    user,
    exclude: Iterable[int] = (),
    draw: Callable[[], float] = random.random,
    now: datetime | None = None,
) -> LabelTask | None:
    """Claim the most useful open task nobody else holds: disagreements, then deferred or audited
    units, then the smallest model margin. At the station's random share the claim serves the
    random slice first, so it keeps being labelled however long the useful queue is."""

    random_share = LabelingSettings.of(station).label_random_share

    def pick(free_tasks) -> LabelTask | None:
        task = None
        if draw() < random_share:
            task = free_tasks.filter(random_slice=True).order_by("id").first()
        if task is None:
            task = free_tasks.order_by("tier", F("margin").asc(nulls_last=True), "id").first()
        return task

    open_tasks = LabelTask.objects.filter(station=station, status=TaskStatus.OPEN)
    return claims.claim_next(open_tasks, user=user, exclude=exclude, now=now, pick=pick)


def label_task_release(*, task: LabelTask, user) -> bool:
    """Give a claimed task back (skip). True if the user held it."""
    return claims.release(task, user=user, status=TaskStatus.OPEN)


def _image_size(item: DatasetItem) -> tuple[int, int]:
    return item.image.width, item.image.height


def _checked_mask(data: bytes, size: tuple[int, int]) -> bytes:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                raise LabelRejected(f"a brush mask must be a PNG image, not {image.format}")
            if image.size != size:
                raise LabelRejected(
                    f"a brush mask must be the image's size {size[0]}x{size[1]},"
                    f" not {image.size[0]}x{image.size[1]}"
                )
            gray = image.convert("LA" if "A" in image.getbands() else "L")
            # Painted pixels count, whether the brush wrote luminance or only alpha.
            band = gray.getchannel("A") if gray.mode == "LA" else gray
            binary = band.point(lambda value: 255 if value else 0).convert("1")
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise LabelRejected(f"a brush mask could not be read as PNG: {error}") from None
    if binary.getbbox() is None:
        raise LabelRejected("a brush mask is empty: paint the defect, or leave the mask out")
    out = io.BytesIO()
    binary.convert("L").save(out, format="PNG", optimize=True)
    return out.getvalue()


def _validated(shapes: Sequence[Shape], *, item: DatasetItem, classes: Sequence[str]) -> list[Shape]:
    width, height = _image_size(item)
    if len(shapes) > MAX_SHAPES:
        raise LabelRejected(f"at most {MAX_SHAPES} shapes per label, not {len(shapes)}")
    checked = []
    whole_image = set()
    for index, shape in enumerate(shapes, start=1):
        where = f"shape {index} ({shape.kind})"
        if shape.label not in classes:
            raise LabelRejected(
                f"{where}: unknown defect class {shape.label!r} (known: {', '.join(classes)})"
            )
        if shape.kind == AnnotationKind.BOX:
            try:
                x, y, w, h = (float(shape.geometry[key]) for key in ("x", "y", "width", "height"))
            except (KeyError, TypeError, ValueError):
                raise LabelRejected(f"{where}: a box needs numbers x, y, width and height") from None
            if w <= 0 or h <= 0:
                raise LabelRejected(f"{where}: a box needs a positive width and height")
            if x < 0 or y < 0 or x + w > width + 0.5 or y + h > height + 0.5:
                raise LabelRejected(f"{where}: the box lies outside the {width}x{height} image")
            checked.append(Shape(shape.kind, shape.label, {"x": x, "y": y, "width": w, "height": h}))
        elif shape.kind == AnnotationKind.POLYGON:
            points = shape.geometry.get("points") if isinstance(shape.geometry, dict) else None
            try:
                points = [(float(x), float(y)) for x, y in points]
            except (TypeError, ValueError):
                raise LabelRejected(f"{where}: a polygon needs points [[x, y], ...]") from None
            if not 3 <= len(points) <= MAX_POLYGON_POINTS:
                raise LabelRejected(
                    f"{where}: a polygon needs 3 to {MAX_POLYGON_POINTS} points, not {len(points)}"
                )
            if any(not (-0.5 <= x <= width + 0.5 and -0.5 <= y <= height + 0.5) for x, y in points):
                raise LabelRejected(f"{where}: a polygon point lies outside the {width}x{height} image")
            checked.append(Shape(shape.kind, shape.label, {"points": [[x, y] for x, y in points]}))
        elif shape.kind == AnnotationKind.MASK:
            if not shape.mask_png:
                raise LabelRejected(f"{where}: a brush mask needs its PNG")
            checked.append(Shape(shape.kind, shape.label, {}, _checked_mask(shape.mask_png, (width, height))))
        elif shape.kind == AnnotationKind.IMAGE_CLASS:
            if shape.geometry or shape.mask_png:
                raise LabelRejected(f"{where}: a whole-image class has no geometry and no mask")
            if shape.label in whole_image:
                raise LabelRejected(f"{where}: {shape.label!r} is given as the whole image's class twice")
            whole_image.add(shape.label)
            checked.append(Shape(shape.kind, shape.label))
        else:
            raise LabelRejected(f"{where}: kind must be box, polygon, mask or class (whole image)")
    return checked


def _submission_rows(
    submission: LabelSubmission, shapes: Sequence[Shape], *, active: bool
) -> list[Annotation]:
    item = submission.task.item
    source = f"submission:{submission.pk}"
    if submission.no_defect:
        return [
            Annotation.objects.create(
                item=item,
                kind=AnnotationKind.NO_DEFECT,
                label=NO_DEFECT,
                source=source,
                submission=submission,
                active=active,
            )
        ]
    rows = []
    for index, shape in enumerate(shapes):
        row = Annotation(
            item=item,
            kind=shape.kind,
            label=shape.label,
            geometry=shape.geometry,
            source=source,
            submission=submission,
            active=active,
        )
        if shape.mask_png is not None:
            row.mask.save(f"s{submission.pk}-{index}.png", ContentFile(shape.mask_png), save=False)
        row.save()
        rows.append(row)
    return rows


def _label_checked(*, task: LabelTask, shapes: Sequence[Shape], no_defect: bool) -> list[Shape]:
    if no_defect and shapes:
        raise LabelRejected("a 'no defect' label has no shapes")
    if not no_defect and not shapes:
        raise LabelRejected("draw at least one defect region, or mark the unit 'no defect'")
    return _validated(shapes, item=task.item, classes=task.item.dataset.classes)


def label_submit(
    *, task: LabelTask, user, shapes: Sequence[Shape] = (), no_defect: bool = False
) -> LabelSubmission:
    """A labeler's label for a task; it waits for review (its rows are inactive until accepted)."""
    task = LabelTask.objects.select_related("item__image", "item__dataset").get(pk=task.pk)
    checked = _label_checked(task=task, shapes=shapes, no_defect=no_defect)
    now = timezone.now()
    with transaction.atomic():
        locked = LabelTask.objects.select_for_update().get(pk=task.pk)
        if locked.status != TaskStatus.OPEN:
            raise LabelConflict(f"task {locked.pk} is {locked.get_status_display()}: it was labelled already")
        claims.check(
            locked,
            user=user,
            now=now,
            refuse=lambda holder: LabelConflict(f"task {locked.pk} is being labelled by {holder}"),
        )
        submission = LabelSubmission.objects.create(
            task=locked, station_id=locked.station_id, author=user, no_defect=no_defect
        )
        submission.task = task
        _submission_rows(submission, checked, active=False)
        locked.status = TaskStatus.IN_REVIEW
        locked.save(update_fields=["status", *claims.clear(locked), "updated_at"])
    return submission


# -- review ----------------------------------------------------------------------------------------


def review_claim_next(
    *, station, user, exclude: Iterable[int] = (), now: datetime | None = None
) -> LabelSubmission | None:
    """Claim the oldest submission waiting for review that the user did not write."""
    waiting = (
        LabelSubmission.objects.filter(station=station, status=SubmissionStatus.PENDING)
        .exclude(author=user)
        .order_by("id")
    )
    return claims.claim_next(waiting, user=user, exclude=exclude, now=now)


def review_release(*, submission: LabelSubmission, user) -> bool:
    """Give a claimed submission back (skip). True if the user held it."""
    return claims.release(submission, user=user, status=SubmissionStatus.PENDING)


def _locked_for_review(submission: LabelSubmission, user, now: datetime) -> LabelSubmission:
    locked = LabelSubmission.objects.select_for_update().select_related("task").get(pk=submission.pk)
    if locked.status != SubmissionStatus.PENDING:
        raise LabelConflict(f"submission {locked.pk} was reviewed already ({locked.get_status_display()})")
    if locked.author_id == user.pk:
        raise LabelRejected("a label is reviewed by someone other than its author")
    claims.check(
        locked,
        user=user,
        now=now,
        refuse=lambda holder: LabelConflict(f"submission {locked.pk} is being reviewed by {holder}"),
    )
    return locked


def _label_make_current(submission: LabelSubmission, now: datetime) -> None:
    """The submission's rows become the item's label; the rows they replace are kept, inactive."""
    task = submission.task
    Annotation.objects.filter(item_id=task.item_id, active=True).exclude(submission=submission).update(
        active=False
    )
    Annotation.objects.filter(submission=submission).update(active=True)
    DatasetItem.objects.filter(pk=task.item_id).update(labelled_at=now)
    task.status = TaskStatus.DONE
    task.feedback = ""
    task.save(update_fields=["status", "feedback", "updated_at"])


def _reviewed(locked: LabelSubmission, *, user, status: str, comment: str, now: datetime) -> None:
    locked.status = status
    locked.reviewer = user
    locked.review_comment = comment
    locked.reviewed_at = now
    locked.save(update_fields=["status", "reviewer", "review_comment", "reviewed_at", *claims.clear(locked)])


def review_accept(*, submission: LabelSubmission, user, comment: str = "") -> LabelSubmission:
    now = timezone.now()
    with transaction.atomic():
        locked = _locked_for_review(submission, user, now)
        _reviewed(locked, user=user, status=SubmissionStatus.ACCEPTED, comment=comment.strip(), now=now)
        _label_make_current(locked, now)
    return locked


def review_reject(*, submission: LabelSubmission, user, comment: str) -> LabelSubmission:
    """Send the label back: the task returns to the queue with the comment for the next labeler."""
    comment = (comment or "").strip()
    if not comment:
        raise LabelRejected("say what is wrong: a rejection needs a comment")
    now = timezone.now()
    with transaction.atomic():
        locked = _locked_for_review(submission, user, now)
        _reviewed(locked, user=user, status=SubmissionStatus.REJECTED, comment=comment, now=now)
        task = locked.task
        task.status = TaskStatus.OPEN
        task.feedback = comment
        task.save(update_fields=["status", "feedback", "updated_at"])
    return locked


def review_fix(
    *,
    submission: LabelSubmission,
    user,
    shapes: Sequence[Shape] = (),
    no_defect: bool = False,
    comment: str = "",
) -> LabelSubmission:
    """The reviewer corrects the label: their version is accepted, the original marked fixed."""
    task = LabelTask.objects.select_related("item__image", "item__dataset").get(pk=submission.task_id)
    checked = _label_checked(task=task, shapes=shapes, no_defect=no_defect)
    now = timezone.now()
    with transaction.atomic():
        locked = _locked_for_review(submission, user, now)
        _reviewed(locked, user=user, status=SubmissionStatus.FIXED, comment=comment.strip(), now=now)
        fixed = LabelSubmission.objects.create(
            task=task,
            station_id=locked.station_id,
            author=user,
            no_defect=no_defect,
            fixes=locked,
            status=SubmissionStatus.ACCEPTED,
            reviewer=user,
            reviewed_at=now,
            review_comment=comment.strip(),
        )
        _submission_rows(fixed, checked, active=False)
        _label_make_current(fixed, now)
    return fixed


# -- figures ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelQueueStats:
    open: int
    open_by_tier: dict[int, int]
    random_slice_open: int
    in_review: int
    done: int


def label_queue_stats(*, station) -> LabelQueueStats:
    figures = LabelTask.objects.filter(station=station).aggregate(
        open=Count("id", filter=Q(status=TaskStatus.OPEN)),
        random_open=Count("id", filter=Q(status=TaskStatus.OPEN, random_slice=True)),
        in_review=Count("id", filter=Q(status=TaskStatus.IN_REVIEW)),
        done=Count("id", filter=Q(status=TaskStatus.DONE)),
    )
    by_tier = dict(
        LabelTask.objects.filter(station=station, status=TaskStatus.OPEN)
        .values_list("tier")
        .annotate(n=Count("id"))
        .values_list("tier", "n")
    )
    return LabelQueueStats(
        open=figures["open"],
        open_by_tier=by_tier,
        random_slice_open=figures["random_open"],
        in_review=figures["in_review"],
        done=figures["done"],
    )
