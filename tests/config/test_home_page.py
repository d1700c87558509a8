"""The front page lists readiness, stations, model versions and data sets; its CSS is served locally."""

import pytest

from inspection.services.stations import station_create
from labeling.models import Dataset
from models_registry.models import ModelVersion


@pytest.mark.django_db
def test_home_page_lists_versions_datasets_and_checks(client):
    Dataset.objects.create(name="screens", classes=["crack", "scratch"], source_format="masks")
    ModelVersion.objects.create(
        name="loupe-screens",
        version=3,
        mlflow_run_id="abc123",
        source_uri="file:///nowhere",
        dataset_name="screens",
        architecture="defectnet-efficientnet_lite0-256",
        classes=["crack", "scratch"],
        metrics={"test": {"image_accuracy": 0.9876}},
        risk_control={"0.02": {"certified": False, "reason": "too little data", "coverage": 0.0}},
    )
    station_create(slug="screens-line-4", level="partial", champion=ModelVersion.objects.get())
    response = client.get("/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "screens-line-4" in page and "Partial automation" in page
    assert "loupe-screens:3" in page and "0.988" in page
    assert "crack, scratch" in page
    assert "not certified" in page
    # the bundle is not reachable, so the page says so instead of pretending
    assert "not ready" in page and "not loadable" in page
    assert "/static/css/loupe.css" in page


@pytest.mark.django_db
def test_static_files_and_api_docs_need_no_cdn(client):
    css = client.get("/static/css/loupe.css")
    assert css.status_code == 200
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    page = docs.content.decode()
    assert "cdn." not in page and "/static/drf_spectacular_sidecar/" in page
