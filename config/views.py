"""The front page: what this Loupe holds and whether it is ready."""

from django.conf import settings
from django.db.models import Count, Q
from django.shortcuts import render

from inspection.enums import UnitStatus
from inspection.models import Station
from labeling.models import Dataset
from models_registry.models import ModelVersion
from models_registry.selectors import model_version_active


def home(request):
    from inspection.views import readiness_checks

    checks = readiness_checks()
    versions = ModelVersion.objects.all()[:20]
    datasets = Dataset.objects.annotate(item_count=Count("items")).order_by("name")
    stations = Station.objects.select_related("champion", "challenger").annotate(
        unit_count=Count("units"), pending_count=Count("units", filter=Q(units__status=UnitStatus.PENDING))
    )
    return render(
        request,
        "home.html",
        {
            "checks": checks,
            "ready": all(check["ok"] for check in checks.values()),
            "active": model_version_active(),
            "versions": versions,
            "datasets": datasets,
            "stations": stations,
            "embedded": {
                "database": settings.EMBEDDED_DATABASE,
                "redis": settings.EMBEDDED_REDIS,
                "mlflow": settings.EMBEDDED_MLFLOW,
            },
            "mlflow_uri": settings.MLFLOW_TRACKING_URI,
        },
    )
