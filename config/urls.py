from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from config import accounts, views
from config.metrics import metrics_view
from inspection import pages
from inspection.history import pages as history_pages
from inspection.supervision.dashboard import pages as dashboard_pages
from labeling import pages as labeling_pages
from workers import admin_views as training_admin

urlpatterns = [
    path("", views.home, name="home"),
    path("system/", views.system, name="system"),
    path("accounts/first-run/<str:token>/", accounts.first_run, name="first-run"),
    path("accounts/login/", accounts.sign_in, name="login"),
    path("accounts/password_reset/", accounts.PasswordResetView.as_view(), name="password_reset"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("stations/", pages.station_list, name="station-list"),
    path("stations/<slug:slug>/", pages.station_page, name="station-page"),
    path("stations/<slug:slug>/units/", history_pages.units_page_view, name="station-units"),
    path("units/", history_pages.units_page_view, name="units"),
    path("units/export.csv", history_pages.units_export, name="units-export"),
    path("units/<int:pk>/", history_pages.unit_page_view, name="unit-page"),
    path("units/<int:pk>/comments/", history_pages.unit_comment, name="unit-comment"),
    path("dashboard/", dashboard_pages.dashboard_page, name="dashboard"),
    path("dashboard/<slug:slug>/", dashboard_pages.dashboard_station_page, name="dashboard-station"),
    path("labeling/", labeling_pages.labeling_station_list, name="labeling-station-list"),
    path("labeling/<slug:slug>/", labeling_pages.labeling_page, name="labeling-page"),
    path("labeling/<slug:slug>/review/", labeling_pages.review_page, name="review-page"),
    # "Retrain now" on a station's admin page; before admin/, whose station URLs would take it.
    path(
        "admin/inspection/station/<int:pk>/retrain/",
        training_admin.station_retrain,
        name="station-retrain",
    ),
    # The admin's own sign-in form, counted with ours (config.accounts.sign_in_throttled).
    path("admin/login/", accounts.sign_in_throttled(admin.site.login), name="admin-login"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("inspection.urls")),
    path("api/v1/", include("inspection.supervision.dashboard.urls")),
    path("api/v1/labeling/", include("labeling.urls")),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="openapi-schema"),
    path("api/v1/docs/", views.ApiReference.as_view(url_name="openapi-schema"), name="api-docs"),
    path("metrics", metrics_view, name="metrics"),
]
