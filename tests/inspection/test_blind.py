"""Blind stays blind: while a shadow or audit unit waits for a person, nothing of the model's
reaches anyone who may judge it, on any page or API."""

import pytest

from inspection.enums import AutomationLevel
from inspection.models import Prediction
from inspection.services.decisions import decision_record
from inspection.services.units import unit_submit
from tests.inspection.factories import jpeg_bytes, person, signed_in

pytestmark = pytest.mark.django_db

MARK = 0.123457  # a defect probability no page would show by chance


@pytest.fixture
def shadow_unit(make_station, media_root):
    station = make_station(level=AutomationLevel.SHADOW)
    unit = unit_submit(station=station, serial="SN-BLIND", image_data=jpeg_bytes(4), filename="u.jpg").unit
    Prediction.objects.filter(unit=unit).update(
        defect_probability=MARK,
        label="crack-from-the-model",
        regions=[{"x": 1, "y": 2, "width": 3, "height": 4}],
    )
    assert unit.blind
    return unit


def _staff(name: str, role: str):
    user = person(name, role=role)
    user.is_staff = True
    user.save()
    return user


def _shows_the_model(body: str) -> bool:
    return "0.123" in body or "crack-from-the-model" in body or "Predictions" in body


def test_a_blind_unit_shows_nothing_of_the_model_to_people_who_may_judge_it(shadow_unit):
    for user in (_staff("ines", "inspector"), _staff("sam", "supervisor")):
        client = signed_in(user)
        admin = client.get(f"/admin/inspection/unit/{shadow_unit.pk}/change/")
        assert admin.status_code == 200
        assert not _shows_the_model(admin.content.decode()), user
        for path in (f"/api/v1/units/{shadow_unit.pk}/", "/api/v1/units/"):
            response = client.get(path)
            assert response.status_code == 200
            assert (
                "score" not in response.content.decode()
                and "crack-from-the-model" not in response.content.decode()
            )
        claimed = client.post(
            f"/api/v1/stations/{shadow_unit.station.slug}/claim/", {}, content_type="application/json"
        )
        assert claimed.status_code == 200 and claimed.json()["blind"] is True
        assert "model" not in claimed.json() and "0.123" not in claimed.content.decode()
        client.post(f"/api/v1/units/{shadow_unit.pk}/release/", {}, content_type="application/json")


def test_once_a_person_has_judged_it_the_supervisor_sees_the_models_view(shadow_unit):
    decision_record(unit=shadow_unit, user=person("ines"), verdict="pass")
    page = signed_in(_staff("sam", "supervisor")).get(f"/admin/inspection/unit/{shadow_unit.pk}/change/")
    assert "crack-from-the-model" in page.content.decode()
