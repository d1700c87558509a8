"""The station's admin page: the Training panel, and "Retrain now" for supervisors only."""

import pytest
from django.contrib.auth.models import Group, User

from inspection.roles import INSPECTOR, SUPERVISOR
from workers.models import TrainingJob, TrainingStatus, TrainingTrigger

pytestmark = pytest.mark.django_db


def staff(name: str, role: str) -> User:
    user = User.objects.create_user(name, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def change_url(station) -> str:
    return f"/admin/inspection/station/{station.pk}/change/"


def retrain_url(station) -> str:
    return f"/admin/inspection/station/{station.pk}/retrain/"


def test_a_supervisor_retrains_from_the_station_page(labelled_station, client):
    station = labelled_station(units=6)
    supervisor = staff("sam", SUPERVISOR)
    client.force_login(supervisor)

    page = client.get(change_url(station))
    assert page.status_code == 200
    assert b'id="training-panel"' in page.content and b"No training yet." in page.content
    assert b'value="Retrain now"' in page.content and b"js/training.js" in page.content

    response = client.post(retrain_url(station))
    assert response.status_code == 302 and response["Location"] == change_url(station)
    job = TrainingJob.objects.get()
    assert (job.trigger, job.requested_by, job.status) == (TrainingTrigger.ADMIN, supervisor, "queued")

    # the panel lists the job; a second click on the same data queues nothing
    page = client.get(change_url(station))
    assert f'data-job="{job.pk}"'.encode() in page.content
    client.post(retrain_url(station))
    assert TrainingJob.objects.count() == 1


def test_the_panel_shows_the_gate_reasons_and_both_models_figures(labelled_station, client):
    station = labelled_station(units=6)
    client.force_login(staff("sam", SUPERVISOR))
    client.post(retrain_url(station))
    metrics = {"image_auroc": 0.91, "image_accuracy": 0.8, "ece": 0.05, "box_map50": None, "n_test": 2}
    TrainingJob.objects.update(
        status=TrainingStatus.REJECTED,
        champion=station.champion,
        evaluation={"units": 2, "candidate": metrics, "champion": {**metrics, "image_auroc": 0.97}},
        gate={
            "passed": False,
            "reasons": ["AUROC 0.910 < champion's 0.970 - 0"],
            "figures": {
                "target_escape_rate": 0.01,
                "candidate": {"coverage": 0.25, "auroc": 0.91},
                "champion": {"coverage": 0.5, "auroc": 0.97},
            },
        },
    )
    page = client.get(change_url(station)).content.decode()
    assert "failed the gate" in page and "AUROC 0.910 &lt; champion&#x27;s 0.970 - 0" in page
    assert "coverage at 0.01 escape rate" in page and "0.250" in page and "0.500" in page and "0.970" in page


def test_an_inspector_may_not_retrain(labelled_station, client):
    station = labelled_station(units=6)
    client.force_login(staff("ines-staff", INSPECTOR))

    assert client.post(retrain_url(station)).status_code == 403
    page = client.get(change_url(station))  # they may look at the station
    assert page.status_code == 200 and b'value="Retrain now"' not in page.content
    assert not TrainingJob.objects.exists()


def test_retrain_is_a_post_behind_the_admin_login(labelled_station, client):
    station = labelled_station(units=6)
    assert client.post(retrain_url(station)).status_code == 302  # to the admin login
    client.force_login(staff("sam", SUPERVISOR))
    assert client.get(retrain_url(station)).status_code == 405
    assert not TrainingJob.objects.exists()


def test_the_retrain_button_checks_csrf(labelled_station):
    from django.test import Client

    station = labelled_station(units=6)
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff("sam", SUPERVISOR))
    assert client.post(retrain_url(station)).status_code == 403
    assert not TrainingJob.objects.exists()


def test_supervisors_see_the_training_jobs_and_inspectors_do_not(labelled_station, client):
    station = labelled_station(units=6)
    client.force_login(staff("sam", SUPERVISOR))
    client.post(retrain_url(station))
    job = TrainingJob.objects.get()
    listing = client.get("/admin/workers/trainingjob/")
    assert listing.status_code == 200
    assert f"/admin/workers/trainingjob/{job.pk}/change/" in listing.content.decode()
    assert client.get(f"/admin/workers/trainingjob/{job.pk}/change/").status_code == 200  # read-only view

    client.force_login(staff("ines-staff", INSPECTOR))
    assert client.get("/admin/workers/trainingjob/").status_code == 403
