"""Webhooks go to public HTTP(S) addresses only, unless an operator allows an internal one: refused
when the URL is saved (the field named) and again at each attempt, on the addresses the host
resolves to then, which the attempt connects to; a redirect is not followed and the receiver's
answer is never stored. Attempts are plain function calls against the local test receiver."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError

from inspection.enums import AutomationLevel
from inspection.models import Station
from inspection.roles import SUPERVISOR
from inspection.webhooks.models import DeliveryStatus, WebhookDelivery
from inspection.webhooks.services import DeliveryFailed, DeliveryRefused, webhook_attempt
from tests.inspection.factories import posted_unit, station_admin_form
from tests.inspection.webhook_receiver import webhook_receiver_serving

pytestmark = pytest.mark.django_db

SECRET = "receiver-shared-secret"
PUBLIC = "93.184.215.14"  # a public address; nothing here connects to it

# (URL with {port} for the test receiver's, what the refusal calls it)
FORBIDDEN = [
    ("http://127.0.0.1:{port}/loupe/decisions", "loopback"),
    ("http://localhost:{port}/loupe/decisions", "loopback"),
    ("http://[::1]:{port}/", "loopback"),
    ("http://[::ffff:127.0.0.1]:{port}/", "loopback"),
    ("http://127.0.0.1:6379/", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://10.1.2.3/hook", "private"),
    ("http://192.168.0.10/hook", "private"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://0.0.0.0:{port}/", "unspecified"),
    ("http://240.0.0.1/hook", "reserved"),
    ("http://100.64.0.1/hook", "non-public"),
    ("ftp://files.example/hook", "only http and https"),
    ("gopher://127.0.0.1:6379/_INFO", "only http and https"),
]


def _supervisor() -> User:
    user = User.objects.create_user("sam", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=SUPERVISOR))
    return user


@pytest.fixture
def delivery(settings, media_root, make_station, device_client, webhook_receiver) -> WebhookDelivery:
    """A pending delivery of an automatic decision, to the local receiver (allowed while the
    station is made, then no longer: each test allows what it means to)."""
    settings.LOUPE_WEBHOOK_ALLOWED_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"),)
    hook = {"webhook_url": webhook_receiver.url, "webhook_secret": SECRET}
    station = make_station(level=AutomationLevel.FULL, **hook)
    posted = posted_unit(device_client(station), "SN-1")
    settings.LOUPE_WEBHOOK_ALLOWED_NETWORKS = ()
    return WebhookDelivery.objects.select_related("station").get(decision__unit_id=posted["id"])


@pytest.mark.parametrize(("url", "kind"), FORBIDDEN)
def test_a_forbidden_target_is_refused_when_saved_naming_the_field(make_station, url, kind):
    with pytest.raises(ValidationError) as refused:
        make_station(webhook_url=url.format(port=8000), webhook_secret=SECRET)

    assert kind in " ".join(refused.value.message_dict["webhook_url"])
    assert not WebhookDelivery.objects.exists()


def test_the_admin_form_names_the_webhook_url_it_refuses(make_station, client):
    station = make_station(level=AutomationLevel.ASSISTED)
    client.force_login(_supervisor())
    form = station_admin_form(
        station, webhook_url="http://169.254.169.254/latest/meta-data/", webhook_secret="a-new-secret"
    )

    response = client.post(f"/admin/inspection/station/{station.pk}/change/", form)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["webhook_url"], errors
    assert "169.254.169.254 is a link-local address" in errors["webhook_url"][0]
    station.refresh_from_db()
    assert (station.webhook_url, station.webhook_secret) == ("", "")


def test_a_public_address_an_unresolved_name_and_allowed_ones_are_accepted(make_station, settings):
    settings.LOUPE_WEBHOOK_ALLOWED_NETWORKS = (ipaddress.ip_network("10.20.0.0/16"),)
    settings.LOUPE_WEBHOOK_ALLOWED_HOSTS = frozenset({"localhost"})
    urls = {
        "public": f"https://{PUBLIC}/hook",
        "later": "https://mes.invalid/hook",  # does not resolve now: checked at each delivery
        "network": "http://10.20.3.4:8080/hook",
        "host": "http://localhost:8080/hook",
    }

    for slug, url in urls.items():
        make_station(slug=slug, champion=None, webhook_url=url, webhook_secret=SECRET)

    assert dict(Station.objects.values_list("slug", "webhook_url")) == urls


@pytest.mark.parametrize(("url", "kind"), FORBIDDEN)
def test_a_forbidden_target_is_refused_at_delivery(delivery, webhook_receiver, url, kind):
    # as a URL saved before the check, or one whose name resolves elsewhere now
    WebhookDelivery.objects.filter(pk=delivery.pk).update(url=url.format(port=webhook_receiver.port))
    delivery.refresh_from_db()

    with pytest.raises(DeliveryRefused):
        webhook_attempt(delivery=delivery)

    assert webhook_receiver.received() == []
    assert delivery.last_error.startswith("refused: ") and kind in delivery.last_error
    assert (delivery.attempts, delivery.last_status_code) == (1, None)
    assert delivery.status == DeliveryStatus.PENDING


def test_the_worker_gives_up_a_refused_delivery_at_once(delivery, webhook_receiver):
    from workers.tasks import webhook_deliver

    WebhookDelivery.objects.filter(pk=delivery.pk).update(url=f"http://localhost:{webhook_receiver.port}/")

    assert webhook_deliver.apply(args=[delivery.pk]).get() == DeliveryStatus.FAILED

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 1)
    assert webhook_receiver.received() == []


def _resolving(monkeypatch, name: str, addresses: list[str]) -> list[str]:
    """Make `name` resolve to `addresses`; returns the list of lookups of it made."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host != name:
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


def test_every_address_of_the_name_is_checked_at_delivery(delivery, webhook_receiver, monkeypatch):
    _resolving(monkeypatch, "hooks.line.test", [PUBLIC, "127.0.0.1"])
    WebhookDelivery.objects.filter(pk=delivery.pk).update(url="http://hooks.line.test/loupe")
    delivery.refresh_from_db()

    with pytest.raises(DeliveryRefused):
        webhook_attempt(delivery=delivery)

    assert "hooks.line.test (127.0.0.1) is a loopback address" in delivery.last_error
    assert webhook_receiver.received() == []


def test_the_attempt_connects_to_the_address_it_checked(delivery, webhook_receiver, monkeypatch, settings):
    settings.LOUPE_WEBHOOK_ALLOWED_HOSTS = frozenset({"hooks.line.test"})
    lookups = _resolving(monkeypatch, "hooks.line.test", ["127.0.0.1"])
    url = f"http://hooks.line.test:{webhook_receiver.port}/loupe?line=1"
    WebhookDelivery.objects.filter(pk=delivery.pk).update(url=url)
    delivery.refresh_from_db()

    webhook_attempt(delivery=delivery)

    (post,) = webhook_receiver.received()
    assert lookups == ["hooks.line.test"]  # resolved once, for the check; not again to connect
    assert (post.method, post.path) == ("POST", "/loupe?line=1")
    assert post.headers["Host"] == f"hooks.line.test:{webhook_receiver.port}"
    assert post.body == delivery.body.encode()
    assert (delivery.last_status_code, delivery.last_error) == (200, "")
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.last_duration_ms is not None


def test_an_allowed_receiver_gets_the_delivery(delivery, webhook_receiver, settings):
    settings.LOUPE_WEBHOOK_ALLOWED_NETWORKS = (ipaddress.ip_network("127.0.0.1/32"),)

    webhook_attempt(delivery=delivery)

    (post,) = webhook_receiver.received()
    assert post.headers["X-Loupe-Delivery"] == str(delivery.id)
    assert delivery.status == DeliveryStatus.DELIVERED


def test_a_redirect_is_a_failed_attempt_and_is_not_followed(delivery, webhook_receiver, settings):
    settings.LOUPE_WEBHOOK_ALLOWED_NETWORKS = (ipaddress.ip_network("127.0.0.1/32"),)
    webhook_receiver.statuses = [302]
    webhook_receiver.location = f"http://127.0.0.1:{webhook_receiver.port}/internal/admin"

    with pytest.raises(DeliveryFailed):
        webhook_attempt(delivery=delivery)

    (post,) = webhook_receiver.received()
    assert post.path == "/loupe/decisions"
    assert delivery.last_error == "HTTP 302: a redirect, not followed"
    assert (delivery.status, delivery.last_status_code) == (DeliveryStatus.PENDING, 302)


def test_the_receivers_answer_is_never_stored(delivery, webhook_receiver, settings):
    settings.LOUPE_WEBHOOK_ALLOWED_NETWORKS = (ipaddress.ip_network("127.0.0.1/32"),)
    webhook_receiver.statuses = [500]
    webhook_receiver.answer_body = b"-ERR internal service said: requirepass hunter2"

    with pytest.raises(DeliveryFailed):
        webhook_attempt(delivery=delivery)

    row = WebhookDelivery.objects.filter(pk=delivery.pk).values().get()
    assert not any("hunter2" in str(value) for value in row.values())
    assert (row["last_status_code"], row["last_error"]) == (500, "HTTP 500")
    assert row["last_duration_ms"] is not None


def _certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for `name` and its key (openssl)."""
    certificate, key = folder / "receiver.pem", folder / "receiver.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(certificate)],
        check=True, capture_output=True,
    )  # fmt: skip
    return certificate, key


def test_https_is_checked_against_the_name_while_connecting_to_the_address(
    delivery, monkeypatch, settings, tmp_path
):
    import requests.certs

    certificate = _certificate(tmp_path, "hooks.line.test")
    monkeypatch.setattr(requests.certs, "where", lambda: str(certificate[0]))  # trust it
    settings.LOUPE_WEBHOOK_ALLOWED_HOSTS = frozenset({"hooks.line.test", "other.line.test"})
    _resolving(monkeypatch, "hooks.line.test", ["127.0.0.1"])
    with webhook_receiver_serving(tls=certificate) as receiver:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(url=f"https://hooks.line.test:{receiver.port}/")
        delivery.refresh_from_db()
        webhook_attempt(delivery=delivery)
        (post,) = receiver.received()

        _resolving(monkeypatch, "other.line.test", ["127.0.0.1"])  # same address, another name
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            url=f"https://other.line.test:{receiver.port}/", status=DeliveryStatus.PENDING
        )
        delivery.refresh_from_db()
        with pytest.raises(DeliveryFailed):
            webhook_attempt(delivery=delivery)

    assert post.headers["Host"] == f"hooks.line.test:{receiver.port}"
    assert "SSLError" in delivery.last_error and "other.line.test" in delivery.last_error
    assert len(receiver.received()) == 1
