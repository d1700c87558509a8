"""The dashboard's JSON endpoints, included under /api/v1/ (the pages are in config/urls.py)."""

from django.urls import path

from inspection.supervision.dashboard import api

urlpatterns = [
    path("dashboard/", api.DashboardFigures.as_view(), name="dashboard-figures"),
    path(
        "dashboard/stations/<slug:slug>/",
        api.StationDashboardFigures.as_view(),
        name="dashboard-station-figures",
    ),
    path("alarms/<int:pk>/acknowledge/", api.AlarmAcknowledge.as_view(), name="alarm-acknowledge"),
    path("alarms/<int:pk>/clear/", api.AlarmClear.as_view(), name="alarm-clear"),
]
