"""Sign-in throttling: wrong passwords are counted per client and per user name; past the limit
even the right password is refused with 429 until the window has let old failures go."""

from __future__ import annotations

import logging

import pytest
from django.test import Client

from inspection.throttling import FailureCounter
from tests.inspection.factories import person

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-passphrase"


@pytest.fixture
def limits(settings):
    settings.LOUPE_SIGN_IN_USER_FAILURES = 3
    settings.LOUPE_SIGN_IN_CLIENT_FAILURES = 5
    settings.LOUPE_FAILURE_WINDOW_SECONDS = 600
    return settings


def sign_in(
    client: Client, username: str, password: str, *, path: str = "/accounts/login/", address="10.0.0.7"
):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def test_after_too_many_wrong_passwords_the_right_one_is_refused_with_429(limits, caplog):
    person("ines", password=PASSWORD)
    client = Client()
    for _ in range(3):
        assert sign_in(client, "ines", "wrong password").status_code == 200

    with caplog.at_level(logging.WARNING, logger="loupe.security"):
        refused = sign_in(client, "ines", PASSWORD)

    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.content.decode()
    assert 0 < int(refused["Retry-After"]) <= 1200
    assert "_auth_user_id" not in client.session
    assert any("sign-in refused" in line and "'ines'" in line for line in caplog.messages)
    # the user name is counted whatever the client: another address is refused as well
    assert sign_in(Client(), "ines", PASSWORD, address="10.0.0.8").status_code == 429


def test_the_client_is_counted_across_user_names_and_the_admin_door_counts_with_ours(limits, caplog):
    person("noor", password=PASSWORD)
    client = Client()
    with caplog.at_level(logging.WARNING, logger="loupe.security"):
        for name in ("a", "b", "c"):
            assert sign_in(client, name, "guess").status_code == 200
        for name in ("d", "e"):
            assert sign_in(client, name, "guess", path="/admin/login/").status_code == 200
    assert sum("sign-in failed" in line for line in caplog.messages) == 5

    assert sign_in(client, "noor", PASSWORD).status_code == 429
    assert sign_in(client, "noor", PASSWORD, path="/admin/login/").status_code == 429
    # another client still signs in
    assert sign_in(Client(), "noor", PASSWORD, address="10.0.0.9").status_code == 302


def test_under_the_limit_the_right_password_signs_in(limits):
    person("sam", password=PASSWORD)
    client = Client()
    for _ in range(2):
        sign_in(client, "sam", "wrong password")
    response = sign_in(client, "sam", PASSWORD)
    assert response.status_code == 302
    assert client.session["_auth_user_id"]


def test_the_window_slides_failures_fade_out_with_the_previous_bucket(settings):
    settings.LOUPE_FAILURE_WINDOW_SECONDS = 100
    counter = FailureCounter("sign-in:user:test-window", limit=4)
    start = 1_000_000.0  # the start of a bucket
    for offset in (10, 20, 30, 40):
        counter.add(now=start + offset)
    # full within its own bucket: until the next bucket has faded it under the limit
    assert counter.retry_after(now=start + 50) == 50 + 0 + 1
    # in the next bucket the four count for what the window still covers of them
    assert counter.retry_after(now=start + 100) is not None
    assert counter.retry_after(now=start + 101) is None
    for _ in range(3):
        counter.add(now=start + 150)
    # 3 + 4 * 0.5 = 5: full again, until the previous bucket weighs under 1 failure (at 75 % through)
    assert counter.retry_after(now=start + 150) == 25
    assert counter.retry_after(now=start + 176) is None
