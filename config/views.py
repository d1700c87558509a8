"""The front door: a welcome for visitors, each role's landing page, and the system overview."""

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularRedocView

from config.accounts import first_run_pending
from inspection.enums import UnitStatus
from inspection.models import Station
from labeling.models import Dataset
from models_registry.models import ModelVersion
from models_registry.selectors import model_version_active

# Where each role works, surest role first: (permission that marks the role, URL name).
LANDINGS = (
    ("inspection.view_dashboard", "dashboard"),
    ("inspection.decide_unit", "station-list"),
    ("labeling.label_item", "labeling-station-list"),
)


def landing_url(user) -> str | None:
    """The page a signed-in person starts on, or None for an account with no role yet."""
    for permission, url_name in LANDINGS:
        if user.has_perm(permission):
            return reverse(url_name)
    return None


def home(request: HttpRequest) -> HttpResponse:
    """Visitors get the sign-in (and, on a fresh installation, how to make the first account);
    a signed-in person goes where their role works."""
    if not request.user.is_authenticated:
        return render(request, "welcome.html", {"first_run": first_run_pending()})
    landing = landing_url(request.user)
    if landing is None:
        return render(request, "no_role.html", status=403)
    return redirect(landing)


@login_required
@permission_required("inspection.view_dashboard", raise_exception=True)
def system(request: HttpRequest) -> HttpResponse:
    """Readiness, stations, model versions and data sets, for supervisors."""
    from inspection.views import readiness_checks

    checks = readiness_checks()
    versions = ModelVersion.objects.all()[:20]
    datasets = Dataset.objects.annotate(item_count=Count("items")).order_by("name")
    stations = Station.objects.select_related("champion", "challenger").annotate(
        unit_count=Count("units"), pending_count=Count("units", filter=Q(units__status=UnitStatus.PENDING))
    )
    return render(
        request,
        "system.html",
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


class ApiReference(SpectacularRedocView):
    """The API reference page, told by its Content-Security-Policy to load nothing from outside
    (ReDoc's bundle would fetch its maker's logo from a CDN; a closed network would wait on it)."""

    POLICY = (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; connect-src 'self'"
    )

    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = self.POLICY
        return response
