"""What labeling adds to a unit's timeline (inspection.history.timeline): the label task made for
it, each submission, and each review."""

from __future__ import annotations

from collections.abc import Iterator

from inspection.history.timeline import TimelineEntry
from inspection.models import Unit
from labeling.models import LabelSubmission, LabelTask, SubmissionStatus


def unit_label_entries(unit: Unit, model_visible: bool) -> Iterator[TimelineEntry]:
    tasks = LabelTask.objects.filter(item__unit=unit).select_related("item__dataset")
    for task in tasks:
        yield TimelineEntry(
            at=task.created_at,
            kind="label",
            title=f"Label task {task.pk} in data set {task.item.dataset.name}",
            lines=(f"why: {task.get_tier_display()}", f"now: {task.get_status_display().lower()}"),
            order=5,
        )
        submissions = LabelSubmission.objects.filter(task=task).select_related("author", "reviewer")
        for submission in submissions.prefetch_related("annotations"):
            labels = sorted({row.label or row.kind for row in submission.annotations.all()})
            what = "no defect" if submission.no_defect else ", ".join(labels) or "nothing marked"
            shapes = len(submission.annotations.all())
            yield TimelineEntry(
                at=submission.created_at,
                kind="label",
                title=f"Labelled: {what}"
                + (f" ({shapes} shape{'s' if shapes != 1 else ''})" if not submission.no_defect else ""),
                lines=(f"submission {submission.pk}",)
                + (("a reviewer's fix",) if submission.fixes_id else ()),
                actor=submission.author.get_username(),
                order=6,
            )
            if submission.reviewed_at is not None and submission.status != SubmissionStatus.PENDING:
                yield TimelineEntry(
                    at=submission.reviewed_at,
                    kind="review",
                    title=f"Review: submission {submission.pk} {submission.get_status_display().lower()}",
                    lines=(submission.review_comment,) if submission.review_comment else (),
                    actor=submission.reviewer.get_username() if submission.reviewer else "",
                    order=7,
                )
