"""A station's admin page in Chromium (its threshold tool: test_threshold_tool.py). The rollout
buttons: a supervisor puts a version in shadow, starts a canary, reads its measured figures before
promoting it, promotes a second one, then rolls back twice, stepping back through the champions;
MLflow's aliases follow each click. The defect classes edited as a list."""

from __future__ import annotations

import pytest

from inspection.models import Station
from inspection.selectors import model_version_station_figures
from inspection.services.decisions import decision_record
from inspection.services.units import unit_submit
from models_registry import mlflow_registry
from tests.browser.conftest import sign_in
from tests.inspection.factories import jpeg_bytes, person

pytestmark = pytest.mark.django_db(transaction=True)


def _supervisor() -> None:
    sam = person("sam", role="supervisor")
    sam.is_staff = True
    sam.save()


def _message(page) -> str:
    return page.inner_text("ul.messagelist")


def test_a_supervisor_rolls_a_model_out_and_back_with_the_buttons(
    asgi_server, browser, make_station, registered
):
    first, second, third = registered(), registered(), registered()
    station = make_station(level="assisted", champion=first)
    _supervisor()
    inspector = person("ines")
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = sign_in(context, asgi_server, "sam")
    change_page = f"{asgi_server.url}/admin/inspection/station/{station.pk}/change/"
    page.goto(change_page)

    # the second version in shadow: the registry's challenger alias follows
    page.select_option("#rollout-model-version", label=f"loupe-screens:{second.version}")
    page.click('button[data-step="challenger"]')
    assert f"loupe-screens:{second.version} is the challenger, in shadow" in _message(page)
    assert mlflow_registry.aliases(name="loupe-screens")["screens-1-challenger"] == second.version

    # a canary for every unit; the line sends three 1280x720 units and an inspector judges them
    page.fill("#rollout-canary-percent", "100")
    page.click('button[data-step="canary"]')
    assert "the challenger decides 100% of units" in _message(page)
    station.refresh_from_db()
    for index in range(3):
        image = jpeg_bytes(index, width=1280, height=720)
        unit = unit_submit(station=station, serial=f"SN-R{index}", image_data=image, filename="unit.jpg").unit
        decision_record(unit=unit, user=inspector, verdict="pass" if index % 2 else "fail", defect_classes=[])
    measured = model_version_station_figures(station=station, model_version=second)
    assert measured["predicted"] == 3 and measured["compared_with_people"] == 3

    # promoting shows the canary's figures first, and changes nothing until confirmed
    page.click('button[data-step="promote"]')
    page.wait_for_selector("#rollout-promote [data-rollout-figures]")

    def figure(name: str) -> str:
        return page.inner_text(f'#rollout-promote td[data-figure="{name}"][data-role="challenger"]').strip()

    assert figure("predicted") == "3"
    assert figure("agreement") == f"{100 * measured['agreement']:.1f} % of 3 units"
    assert figure("escapes") == "none of its decisions checked yet"  # a person decided each one
    assert figure("latency").endswith(" ms") and " / " in figure("latency")
    station.refresh_from_db()
    assert station.champion == first
    page.click('button[data-step="promote-confirmed"]')
    assert f"loupe-screens:{second.version} is the champion" in _message(page)
    assert mlflow_registry.aliases(name="loupe-screens") == {"screens-1-champion": second.version}

    # a third version in shadow and promoted at once
    page.select_option("#rollout-model-version", label=f"loupe-screens:{third.version}")
    page.click('button[data-step="challenger"]')
    page.click('button[data-step="promote"]')
    page.click('button[data-step="promote-confirmed"]')
    assert f"loupe-screens:{third.version} is the champion" in _message(page)

    # two rollbacks step back to the second, then the first: never back to the third
    page.click('button[data-step="rollback"]')
    assert f"rolled back to loupe-screens:{second.version}" in _message(page)
    assert page.inner_text('button[data-step="rollback"]') == f"Roll back to loupe-screens:{first.version}"
    page.click('button[data-step="rollback"]')
    assert f"rolled back to loupe-screens:{first.version}" in _message(page)
    assert page.locator('button[data-step="rollback"]').count() == 0  # no earlier champion left
    station.refresh_from_db()
    assert station.champion == first and station.challenger is None
    assert mlflow_registry.aliases(name="loupe-screens") == {"screens-1-champion": first.version}
    champion_changes = Station.objects.get(pk=station.pk).changes.filter(field="champion")
    assert champion_changes.count() == 4
    assert set(champion_changes.values_list("changed_by__username", flat=True)) == {"sam"}
    context.close()


def test_a_supervisor_edits_the_defect_classes_as_a_list(asgi_server, browser, make_station):
    station = make_station(level="assisted")  # crack, scratch: the tiny model's classes
    _supervisor()
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = sign_in(context, asgi_server, "sam")
    page.goto(f"{asgi_server.url}/admin/inspection/station/{station.pk}/change/")

    def rows() -> list[str]:
        return page.eval_on_selector_all(".defect-classes-row", "rows => rows.map((r) => r.dataset.class)")

    assert rows() == ["crack", "scratch"] and page.is_hidden("#id_defect_classes")
    # two classes added (Enter adds, it does not save), a duplicate refused at once
    page.fill("#id_defect_classes_new", "stain")
    page.keyboard.press("Enter")
    page.fill("#id_defect_classes_new", "dead pixels")
    page.click('.defect-classes-add button[data-action="add"]')
    page.fill("#id_defect_classes_new", "Crack")
    page.keyboard.press("Enter")
    assert "Crack: listed twice (as crack before)" in page.inner_text(".defect-classes-problem")
    assert rows() == ["crack", "scratch", "stain", "dead pixels"]
    # moved up and removed
    page.click('.defect-classes-row[data-class="dead pixels"] button[data-action="up"]')
    page.click('.defect-classes-row[data-class="scratch"] button[data-action="remove"]')
    assert rows() == ["crack", "dead pixels", "stain"]
    # a rename the station would refuse is flagged on its row, and by the form when saved
    page.fill('.defect-classes-row[data-class="stain"] input[type="text"]', "stain/oil")
    page.keyboard.press("Tab")
    assert "up to 60 letters" in page.inner_text('.defect-classes-row[data-class="stain/oil"]')
    page.click('input[name="_continue"]')
    page.wait_for_selector(".errornote")
    assert "'stain/oil' is not a class name" in page.inner_text(".field-defect_classes")
    station.refresh_from_db()
    assert station.defect_classes == ["crack", "scratch"]
    # put right and saved: the new list, audited
    page.fill('.defect-classes-row[data-class="stain/oil"] input[type="text"]', "stain")
    page.keyboard.press("Tab")
    page.click('input[name="_continue"]')
    page.wait_for_selector("ul.messagelist .success")
    station.refresh_from_db()
    assert station.defect_classes == ["crack", "dead pixels", "stain"]
    change = station.changes.get(field="defect_classes")
    assert (change.old_value, change.new_value, change.changed_by.username) == (
        ["crack", "scratch"],
        ["crack", "dead pixels", "stain"],
        "sam",
    )
    assert rows() == ["crack", "dead pixels", "stain"]
    context.close()
