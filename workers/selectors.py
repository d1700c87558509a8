"""Reads over training jobs: a station's recent jobs, and what its admin page and live events show."""

from __future__ import annotations

from workers.models import TrainingJob


def training_jobs_recent(*, station, limit: int = 10) -> list[TrainingJob]:
    """The station's latest training jobs, newest first."""
    return list(
        TrainingJob.objects.filter(station=station)
        .select_related("station", "snapshot", "candidate", "champion", "requested_by")
        .order_by("-created_at", "-id")[:limit]
    )


def training_job_summary(job: TrainingJob) -> dict:
    """What the station's admin page and its live events show of a job (JSON-able)."""
    gate = job.gate or {}
    return {
        "id": job.pk,
        "status": job.status,
        "status_label": job.get_status_display(),
        "trigger": job.get_trigger_display(),
        "requested_by": job.requested_by.get_username() if job.requested_by else None,
        "snapshot": str(job.snapshot),
        "attempts": job.attempts,
        "epoch": job.epoch,
        "epochs": job.epochs,
        "step": job.step,
        "steps": job.steps,
        "loss": job.loss,
        "validation_loss": job.validation_loss,
        "eta_seconds": job.eta_seconds,
        "candidate": str(job.candidate) if job.candidate else None,
        "champion": str(job.champion) if job.champion else None,
        "passed": gate.get("passed"),
        "reasons": list(gate.get("reasons", [])),
        "test_units": (job.evaluation or {}).get("units"),
        "comparison": _comparison(job),
        "error": job.error,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def _comparison(job: TrainingJob) -> list[dict]:
    """Candidate and champion side by side on the frozen test split: the gate's two figures first."""
    evaluation, figures = job.evaluation or {}, (job.gate or {}).get("figures") or {}
    candidate, champion = evaluation.get("candidate"), evaluation.get("champion") or {}
    if not candidate:
        return []
    rows = []
    if "candidate" in figures:
        rows.append(
            {
                "metric": f"coverage at {figures['target_escape_rate']:g} escape rate",
                "candidate": figures["candidate"]["coverage"],
                "champion": (figures.get("champion") or {}).get("coverage"),
            }
        )
    for key, label in (
        ("image_auroc", "AUROC"),
        ("image_accuracy", "accuracy"),
        ("ece", "calibration error (ECE)"),
        ("box_map50", "box mAP@50"),
    ):
        rows.append({"metric": label, "candidate": candidate.get(key), "champion": champion.get(key)})
    return rows
