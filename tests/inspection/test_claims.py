"""The one claims mechanism (`inspection.claims`), on units: what is free, expiry, release, the
check before the work is written, the endpoints' contract, and concurrent claimers on PostgreSQL.

The units are written straight into the table (no model, no image file): the claim reads nothing
else. The inspector's and the labelers' queues on top of it are tested in test_queue.py and
tests/labeling/test_work.py.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from inspection import claims
from inspection.enums import AutomationLevel, UnitStatus
from inspection.models import Station, Unit
from tests.inspection.factories import person

pytestmark = pytest.mark.django_db


class Held(Exception):
    pass


@pytest.fixture
def station() -> Station:
    return Station.objects.create(slug="claims-1", name="claims", automation_level=AutomationLevel.HUMAN)


def units(station: Station, count: int, *, status: str = UnitStatus.PENDING) -> list[Unit]:
    """`count` units received a second apart, oldest first."""
    start = timezone.now() - timedelta(hours=1)
    return [
        Unit.objects.create(
            station=station,
            serial=f"SN-{index}",
            image=f"units/claims/{index}.jpg",
            image_sha256=f"{index:064d}",
            image_width=320,
            image_height=180,
            image_format="JPEG",
            received_at=start + timedelta(seconds=index),
            status=status,
            automation_level=AutomationLevel.HUMAN,
        )
        for index in range(count)
    ]


def queue(station: Station):
    return Unit.objects.filter(station=station, status=UnitStatus.PENDING).order_by("received_at", "id")


def test_every_claimable_model_names_its_claim_length():
    claimable = [model for model in apps.get_models() if issubclass(model, claims.Claimable)]
    assert {model._meta.label for model in claimable} >= {"inspection.Unit"}
    for model in claimable:
        assert isinstance(getattr(django_settings, model.claim_seconds_setting), int), model


def test_claim_next_takes_the_first_free_row_and_skips_those_held(station, settings):
    first, second, third = units(station, 3)
    ines, omar = person("ines"), person("omar")
    now = timezone.now()
    claimed = claims.claim_next(queue(station), user=ines, now=now)
    assert claimed.pk == first.pk
    stored = Unit.objects.get(pk=first.pk)
    assert stored.claimed_by == ines
    assert stored.claim_expires_at == now + timedelta(seconds=settings.LOUPE_CLAIM_SECONDS)
    # someone else's live claim is skipped; the claimant's own comes back to them
    assert claims.claim_next(queue(station), user=omar, now=now).pk == second.pk
    assert claims.claim_next(queue(station), user=ines, now=now).pk == first.pk
    assert claims.claim_next(queue(station), user=ines, exclude=[first.pk], now=now).pk == third.pk
    assert claims.claim_next(queue(station), user=omar, exclude=[second.pk], now=now) is None
    # a row outside the queue given is never offered
    Unit.objects.filter(pk=third.pk).update(status=UnitStatus.DECIDED, claimed_by=None)
    assert claims.claim_next(queue(station), user=person("lena"), now=now) is None


def test_pick_chooses_among_the_free_rows_only(station):
    first, second, third = units(station, 3)
    ines, omar = person("ines"), person("omar")
    claims.claim_next(queue(station), user=ines)  # first

    def newest(free):
        return free.order_by("-received_at").first()

    assert claims.claim_next(queue(station), user=omar, pick=newest).pk == third.pk
    assert claims.claim_next(queue(station), user=person("lena"), pick=newest).pk == second.pk
    assert claims.claim_next(queue(station), user=person("ali"), pick=newest) is None


def test_claim_takes_the_given_row_only_while_it_is_free_and_in_the_queue(station, settings):
    first, second = units(station, 2)
    ines, omar = person("ines"), person("omar")
    now = timezone.now()
    assert claims.claim(queue(station), pk=second.pk, user=ines, now=now).pk == second.pk
    stored = Unit.objects.get(pk=second.pk)
    assert stored.claimed_by == ines
    assert stored.claim_expires_at == now + timedelta(seconds=settings.LOUPE_CLAIM_SECONDS)
    # another's live claim refuses it; the claimant's own is renewed; a run-out one is free
    assert claims.claim(queue(station), pk=second.pk, user=omar, now=now) is None
    later = now + timedelta(seconds=1)
    renewed = claims.claim(queue(station), pk=second.pk, user=ines, now=later)
    assert renewed.claim_expires_at > stored.claim_expires_at
    expired = later + timedelta(seconds=settings.LOUPE_CLAIM_SECONDS + 1)
    assert claims.claim(queue(station), pk=second.pk, user=omar, now=expired).claimed_by == omar
    # a row that left the queue is not claimed
    Unit.objects.filter(pk=first.pk).update(status=UnitStatus.DECIDED)
    assert claims.claim(queue(station), pk=first.pk, user=ines, now=now) is None
    assert Unit.objects.get(pk=first.pk).claimed_by is None


def test_a_claim_runs_out_after_its_length_and_not_before(station, settings):
    (only,) = units(station, 1)
    ines, omar = person("ines"), person("omar")
    now = timezone.now()
    claims.claim_next(queue(station), user=ines, now=now)
    expiry = now + timedelta(seconds=settings.LOUPE_CLAIM_SECONDS)
    held = Unit.objects.get(pk=only.pk)
    # up to its expiry the claim blocks another claim ...
    assert claims.claim_next(queue(station), user=omar, now=expiry - timedelta(seconds=1)) is None
    assert claims.claim_next(queue(station), user=omar, now=expiry) is None
    # ... and the work of another person until just before it
    assert claims.held_by_another(held, user=omar, now=expiry - timedelta(microseconds=1))
    assert not claims.held_by_another(held, user=omar, now=expiry)
    # past it the row is free again, and the new claim starts a new length
    later = expiry + timedelta(microseconds=1)
    assert claims.claim_next(queue(station), user=omar, now=later).pk == only.pk
    retaken = Unit.objects.get(pk=only.pk)
    assert retaken.claimed_by == omar
    assert retaken.claim_expires_at == later + timedelta(seconds=settings.LOUPE_CLAIM_SECONDS)


def test_the_claim_length_is_read_at_each_claim(station, settings):
    (only,) = units(station, 1)
    settings.LOUPE_CLAIM_SECONDS = 5
    now = timezone.now()
    claims.claim_next(queue(station), user=person("ines"), now=now)
    assert Unit.objects.get(pk=only.pk).claim_expires_at == now + timedelta(seconds=5)


def test_only_the_claimant_releases_and_only_while_the_row_is_in_the_queue(station):
    first, second = units(station, 2)
    ines, omar = person("ines"), person("omar")
    claims.claim_next(queue(station), user=ines)
    assert not claims.release(first, user=omar, status=UnitStatus.PENDING)
    assert Unit.objects.get(pk=first.pk).claimed_by == ines
    assert claims.release(first, user=ines, status=UnitStatus.PENDING)
    released = Unit.objects.get(pk=first.pk)
    assert released.claimed_by is None and released.claim_expires_at is None
    assert not claims.release(first, user=ines, status=UnitStatus.PENDING)  # nothing left to give back
    # the claimant can give back a claim that ran out (nobody took it since) ...
    claims.claim_next(queue(station), user=omar, now=timezone.now() - timedelta(days=1))
    assert claims.release(first, user=omar, status=UnitStatus.PENDING)
    # ... but not a row that left the queue
    claims.claim_next(queue(station), user=ines)
    Unit.objects.filter(pk=first.pk).update(status=UnitStatus.DECIDED)
    assert not claims.release(first, user=ines, status=UnitStatus.PENDING)
    assert Unit.objects.get(pk=first.pk).claimed_by == ines


def test_check_refuses_only_another_persons_live_claim(station):
    (only,) = units(station, 1)
    ines, omar = person("ines"), person("omar")
    row = Unit.objects.get(pk=only.pk)
    claims.check(row, user=omar, refuse=Held)  # unclaimed
    claims.claim_next(queue(station), user=ines)
    row = Unit.objects.get(pk=only.pk)
    claims.check(row, user=ines, refuse=Held)  # one's own
    with pytest.raises(Held) as refused:
        claims.check(row, user=omar, refuse=Held)
    assert refused.value.args == (ines,)  # refuse gets the holder
    claims.check(row, user=omar, refuse=Held, now=row.claim_expires_at + timedelta(seconds=1))
    # a claimant without an expiry holds nothing
    row.claim_expires_at = None
    assert not claims.held_by_another(row, user=omar)


def test_clear_drops_the_claim_and_names_the_fields_to_save(station):
    (only,) = units(station, 1)
    claims.claim_next(queue(station), user=person("ines"))
    row = Unit.objects.get(pk=only.pk)
    row.status = UnitStatus.DECIDED
    row.save(update_fields=["status", *claims.clear(row)])
    stored = Unit.objects.get(pk=only.pk)
    assert stored.claimed_by is None and stored.claim_expires_at is None and stored.status == "decided"


def test_held_at_counts_the_live_claims(station):
    first, second, third = units(station, 3)
    now = timezone.now()
    claims.claim_next(queue(station), user=person("ines"), now=now)
    claims.claim_next(queue(station), user=person("omar"), now=now - timedelta(days=1))  # ran out
    live = Unit.objects.filter(claims.held_at(now))
    assert list(live.values_list("pk", flat=True)) == [first.pk]


# -- the endpoints (the base views, through the station page's) ----------------------------------------


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_claim_and_release_endpoints_keep_their_contract(station):
    first, second = units(station, 2)
    ines, omar = _client(person("ines")), _client(person("omar"))
    claim = f"/api/v1/stations/{station.slug}/claim/"
    body = ines.post(claim, {}, format="json")
    assert body.status_code == 200 and body.json()["id"] == first.pk
    assert body.json()["claim_expires_at"] is not None
    assert omar.post(claim, {"exclude": [second.pk]}, format="json").status_code == 204
    assert omar.post(claim, {"exclude": "nope"}, format="json").status_code == 400
    assert omar.post("/api/v1/stations/nowhere/claim/", {}, format="json").status_code == 404

    refused = omar.post(f"/api/v1/units/{first.pk}/release/")
    assert refused.status_code == 400
    assert refused.json() == {"detail": f"unit {first.pk} is not pending and claimed by you"}
    assert omar.post("/api/v1/units/999999/release/").status_code == 404
    given_back = ines.post(f"/api/v1/units/{first.pk}/release/")
    assert given_back.status_code == 204 and not given_back.content
    assert omar.post(claim, {}, format="json").json()["id"] == first.pk


# -- concurrency on PostgreSQL -------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_claimers_get_different_rows(station):
    rows = units(station, 12)
    people = [person(f"inspector-{index}") for index in range(4)]
    barrier = threading.Barrier(len(people))
    claimed: dict[int, list[int]] = {p.pk: [] for p in people}
    failures: list[BaseException] = []

    def work(user) -> None:
        try:
            barrier.wait(timeout=60)
            while (row := claims.claim_next(queue(station), user=user, exclude=claimed[user.pk])) is not None:
                claimed[user.pk].append(row.pk)
        except BaseException as error:  # reported after the join
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(p,)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    every = [pk for mine in claimed.values() for pk in mine]
    assert sorted(every) == sorted(row.pk for row in rows)  # each row once, none lost
    holders = dict(Unit.objects.values_list("pk", "claimed_by_id"))
    assert all(holders[pk] == user for user, mine in claimed.items() for pk in mine)


def while_another_holds(hold, meanwhile) -> tuple[object, object, bool]:
    """Run `hold()` in a transaction of its own thread that stays open until `meanwhile()`, in
    another thread, has answered: (what hold returned, what meanwhile returned, whether meanwhile
    answered while the first transaction still held its row locks)."""
    locked, done = threading.Event(), threading.Event()
    got: dict[str, object] = {}
    failures: list[BaseException] = []

    def holder() -> None:
        try:
            with transaction.atomic():
                got["held"] = hold()
                locked.set()
                got["answered_while_locked"] = done.wait(timeout=60)
        except BaseException as error:
            failures.append(error)
            locked.set()
        finally:
            connection.close()

    def other() -> None:
        try:
            locked.wait(timeout=60)
            got["meanwhile"] = meanwhile()
            done.set()
        except BaseException as error:
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=holder), threading.Thread(target=other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    return got["held"], got["meanwhile"], got["answered_while_locked"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_claim_skips_a_row_another_is_claiming_without_waiting(station):
    first, second = units(station, 2)
    ines, omar = person("ines"), person("omar")
    # ines's claim is not committed: the first unit still looks free, but is locked
    held, meanwhile, answered_while_locked = while_another_holds(
        lambda: claims.claim_next(queue(station), user=ines),
        lambda: claims.claim_next(queue(station), user=omar),
    )
    assert held.pk == first.pk and meanwhile.pk == second.pk
    assert answered_while_locked  # SKIP LOCKED: omar did not wait for ines's commit


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_claiming_a_given_row_another_is_claiming_answers_none_without_waiting(station):
    (only,) = units(station, 1)
    ines, omar = person("ines"), person("omar")
    held, meanwhile, answered_while_locked = while_another_holds(
        lambda: claims.claim(queue(station), pk=only.pk, user=ines),
        lambda: claims.claim(queue(station), pk=only.pk, user=omar),
    )
    assert held.pk == only.pk and meanwhile is None
    assert answered_while_locked  # SKIP LOCKED: omar did not wait for ines's commit
    assert Unit.objects.get(pk=only.pk).claimed_by == ines
