from django.urls import path

from inspection import api, inspector_api, views

urlpatterns = [
    path("health", views.health, name="health"),
    path("units/", api.UnitListCreate.as_view(), name="unit-list"),
    path("units/<int:pk>/", api.UnitDetail.as_view(), name="unit-detail"),
    path("units/<int:pk>/decision/", api.UnitDecision.as_view(), name="unit-decision"),
    path("units/<int:pk>/image", api.UnitImage.as_view(), name="unit-image"),
    path("units/<int:pk>/claim/", inspector_api.ClaimUnit.as_view(), name="unit-claim"),
    path("units/<int:pk>/release/", inspector_api.ReleaseClaim.as_view(), name="unit-release"),
    path("stations/<slug:slug>/claim/", inspector_api.ClaimNext.as_view(), name="station-claim"),
    path("stations/<slug:slug>/queue/", inspector_api.QueueFigures.as_view(), name="station-queue"),
]
