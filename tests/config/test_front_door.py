"""The front door: visitors see no data, each role lands where it works, the system page is for
supervisors, error pages say what to do, and the first account comes from a one-time link."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client

from config.accounts import sign_in_hint
from inspection.services.stations import station_create
from labeling.models import Dataset
from models_registry.models import ModelVersion
from tests.inspection.factories import person, signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def installation():
    Dataset.objects.create(name="screens", classes=["crack", "scratch"], source_format="masks")
    version = ModelVersion.objects.create(
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
    station_create(slug="screens-line-4", level="partial", champion=version)


def test_the_system_page_lists_versions_datasets_and_checks(installation):
    response = signed_in(person("sam", role="supervisor")).get("/system/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "screens-line-4" in page and "Partial automation" in page
    assert "loupe-screens:3" in page and "0.988" in page
    assert "crack, scratch" in page
    assert "not certified" in page
    # the bundle is not reachable, so the page says so instead of pretending
    assert "not ready" in page and "not loadable" in page
    assert "/static/css/loupe.css" in page


def test_a_visitor_sees_no_station_model_or_data_set(installation, client):
    person("ines")  # an account exists: the page offers to sign in
    page = client.get("/").content.decode()
    for secret in ("screens-line-4", "loupe-screens", "crack, scratch", "file:///nowhere", "abc123"):
        assert secret not in page
    assert 'href="/accounts/login/"' in page and "No account exists yet" not in page
    assert 'href="/admin/"' not in page and 'href="/dashboard/"' not in page
    assert client.get("/system/")["Location"] == "/accounts/login/?next=/system/"


@pytest.mark.parametrize(
    ("role", "landing"),
    [("inspector", "/stations/"), ("labeler", "/labeling/"), ("supervisor", "/dashboard/")],
)
def test_each_role_lands_where_it_works(role, landing):
    assert signed_in(person(f"someone-{role}", role=role)).get("/")["Location"] == landing


def test_a_superuser_lands_on_the_dashboard():
    root = get_user_model().objects.create_superuser("root", password="unused-password")
    assert signed_in(root).get("/")["Location"] == "/dashboard/"


def test_the_navigation_shows_only_what_the_role_may_open():
    def links(user) -> set[str]:
        page = signed_in(user).get("/stations/").content.decode()
        nav = page[page.index("<nav>") : page.index("</nav>")]
        return set(re.findall(r'href="([^"]+)"', nav))

    assert links(person("ines", role="inspector")) == {"/stations/", "/units/", "/api/v1/docs/"}
    assert links(person("lea", role="labeler")) == {"/stations/", "/units/", "/labeling/", "/api/v1/docs/"}
    supervisor = person("sam", role="supervisor")
    assert links(supervisor) == {
        "/stations/",
        "/units/",
        "/dashboard/",
        "/labeling/",
        "/system/",
        "/api/v1/docs/",
    }
    supervisor.is_staff = True
    supervisor.save()
    assert "/admin/" in links(supervisor)


def test_an_account_with_no_role_is_told_whom_to_ask():
    response = signed_in(get_user_model().objects.create_user("nobody")).get("/")
    assert response.status_code == 403
    assert "no role yet" in response.content.decode() and "Ask a supervisor" in response.content.decode()


def test_403_and_404_are_pages_that_say_what_to_do(installation):
    inspector = signed_in(person("ines", role="inspector"))
    forbidden = inspector.get("/dashboard/")
    assert forbidden.status_code == 403
    assert "Your role cannot open this page" in forbidden.content.decode()
    assert 'href="/"' in forbidden.content.decode()
    missing = inspector.get("/stations/no-such-station/")
    assert missing.status_code == 404
    assert (
        "Nothing here" in missing.content.decode()
        and "/stations/no-such-station/" in missing.content.decode()
    )


def test_static_files_and_api_docs_need_no_cdn(client):
    css = client.get("/static/css/loupe.css")
    assert css.status_code == 200
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    page = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/" in page
    # nothing from outside: every script, style sheet and font is this server's own
    loaded = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert loaded and all(url.startswith("/") for url in loaded), loaded
    assert "googleapis" not in page and "cdn." not in page


# -- the first account ---------------------------------------------------------------------------


def _first_run_link() -> str:
    hint = sign_in_hint("http://127.0.0.1:8000")
    match = re.search(r"http://127\.0\.0\.1:8000(/accounts/first-run/[^/\s]+/)", hint)
    assert match, hint
    return match.group(1)


def test_a_fresh_installation_says_where_the_first_account_comes_from(client, capsys):
    assert "No account exists yet" in client.get("/").content.decode()
    assert "No account exists yet" in client.get("/accounts/login/").content.decode()
    call_command("first_run_link", base_url="https://loupe.example.com/")
    assert re.search(
        r"at https://loupe\.example\.com/accounts/first-run/[^/\s]+/$", capsys.readouterr().out.strip()
    )


def test_the_first_run_link_makes_one_supervisor_and_then_stops_working(client):
    link = _first_run_link()
    assert client.get(link).status_code == 200
    weak = client.post(link, {"username": "sam", "password": "12345678", "password_again": "12345678"})
    assert weak.status_code == 200 and "too short" in weak.content.decode()
    differ = client.post(
        link, {"username": "sam", "password": "a-long-passphrase", "password_again": "other"}
    )
    assert "the two passwords differ" in differ.content.decode()
    assert not get_user_model().objects.exists()

    made = client.post(
        link, {"username": "sam", "password": "a-long-passphrase", "password_again": "a-long-passphrase"}
    )
    assert made["Location"] == "/"
    sam = get_user_model().objects.get()
    assert sam.is_superuser and sam.is_staff and sam.check_password("a-long-passphrase")
    assert list(sam.groups.all()) == [Group.objects.get(name="supervisor")]
    assert client.get("/")["Location"] == "/dashboard/"  # signed in

    again = Client().get(link)
    assert again.status_code == 410 and "already has an account" in again.content.decode()
    assert Client().post(link, {"username": "eve", "password": "x", "password_again": "x"}).status_code == 410
    assert get_user_model().objects.count() == 1
    assert sign_in_hint("http://127.0.0.1:8000") == "Sign in at http://127.0.0.1:8000/accounts/login/"


def test_a_forged_first_run_link_is_refused(client):
    link = _first_run_link()
    assert client.get(link[:-3] + "xx/").status_code == 404
    assert client.get("/accounts/first-run/first-run/").status_code == 404
