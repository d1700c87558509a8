"""Media storage: an accepted image is on disk, synced, under its final name only; a write that
fails midway (a full disk) leaves no file behind, temporary or truncated."""

from __future__ import annotations

import errno
import os

import pytest
from django.core.files.base import ContentFile

from config.storage import DurableFileSystemStorage


class FailingContent(ContentFile):
    """Content whose second chunk cannot be written, as when the disk fills up mid-file."""

    def chunks(self, chunk_size=None):
        yield b"x" * 1024
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_saved_image_is_whole_under_its_name_and_no_temporary_file_is_left(tmp_path):
    storage = DurableFileSystemStorage(location=tmp_path)
    data = os.urandom(300_000)
    name = storage.save("units/a.jpg", ContentFile(data))
    assert (tmp_path / name).read_bytes() == data
    assert sorted(path.name for path in (tmp_path / "units").iterdir()) == ["a.jpg"]


def test_a_second_image_of_the_same_name_gets_a_name_of_its_own(tmp_path):
    storage = DurableFileSystemStorage(location=tmp_path)
    first = storage.save("a.jpg", ContentFile(b"first"))
    second = storage.save("a.jpg", ContentFile(b"second"))
    assert first != second
    assert (tmp_path / first).read_bytes() == b"first" and (tmp_path / second).read_bytes() == b"second"


def test_a_write_failing_midway_leaves_nothing_behind(tmp_path):
    storage = DurableFileSystemStorage(location=tmp_path)
    with pytest.raises(OSError) as raised:
        storage.save("units/b.jpg", FailingContent(b""))
    assert raised.value.errno == errno.ENOSPC
    assert list((tmp_path / "units").iterdir()) == []
