"""The Training panel in a real browser: "Retrain now", then progress and the gate's outcome
arriving over the station's WebSocket while the page stays open (no reload)."""

import pytest
from django.contrib.auth.models import Group, User

from inspection.roles import SUPERVISOR
from tests.browser.conftest import asgi_server, browser, sign_in  # noqa: F401
from workers.models import TrainingJob
from workers.retraining import training_job_run

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_MS = 60_000


def test_the_panel_follows_a_training_live(
    tiny_retraining,
    browser,  # noqa: F811
    asgi_server,  # noqa: F811
    labelled_station,
):
    station = labelled_station(slug="line-live", units=36, gate_auroc_margin=1.0)
    supervisor = User.objects.create_user("sam", password="pw", is_staff=True)
    supervisor.groups.add(Group.objects.get(name=SUPERVISOR))
    context = browser.new_context()
    page = sign_in(context, asgi_server, "sam")
    page.goto(f"{asgi_server.url}/admin/inspection/station/{station.pk}/change/")
    page.wait_for_selector("text=live updates: on", timeout=WAIT_MS)

    page.click("input[value='Retrain now']")
    page.wait_for_selector("text=queued on snapshot", timeout=WAIT_MS)
    job = TrainingJob.objects.get()
    row = f"#training-panel tr[data-job='{job.pk}']"
    page.wait_for_selector("text=live updates: on", timeout=WAIT_MS)

    # the worker's part, in this process: its events reach the open page through Redis
    job = training_job_run(job=job)

    page.wait_for_selector(f"{row} .training-status-shadow", timeout=WAIT_MS)
    assert "passed the gate: challenger in shadow" in page.inner_text(f"{row} .training-status")
    assert page.inner_text(f"{row} .training-progress-text").startswith("epoch 1/1, loss ")
    progress = page.eval_on_selector(f"{row} progress", "bar => [bar.value, bar.max]")
    assert progress[0] == progress[1] > 0
    comparison = page.inner_text(f"{row} .training-comparison")
    assert f"loupe-line-live v{job.candidate.version}" in comparison
    assert "AUROC" in comparison and "test units" in comparison
    assert "not worse" in page.inner_text(f"{row} .training-gate")
    context.close()
