"""Media storage that keeps what it accepted: each file written under a temporary name, synced to
disk, linked into place and its folder synced, all before the unit's row commits, so that a 201
never names an image a power cut can take back.

Django's FileSystemStorage leaves the bytes in the page cache (a crash loses them while the
database, which syncs its commits, keeps the row), and on a full disk it leaves a truncated file
behind. Here any error removes the temporary file and raises, so nothing partial is left: the
caller refuses the unit (`inspection.services.units.StorageFull` on a full disk).
"""

from __future__ import annotations

import contextlib
import os
import secrets

from django.core.files.storage import FileSystemStorage


class DurableFileSystemStorage(FileSystemStorage):
    def _save(self, name, content):
        directory = os.path.dirname(self.path(name))
        os.makedirs(directory, exist_ok=True)
        temporary = os.path.join(directory, f".upload-{secrets.token_hex(8)}")
        try:
            self._write_synced(temporary, content)
            while True:
                try:
                    os.link(temporary, self.path(name))  # never replaces a file that has the name
                    break
                except FileExistsError:
                    name = self.get_available_name(name)  # same folder, another name
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        _fsync_folder(directory)
        return str(name).replace("\\", "/")

    def _write_synced(self, path: str, content) -> None:
        # The mode as FileSystemStorage creates files: 0o666 less the umask, or the setting's.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(descriptor, "wb") as file:
            content.seek(0)
            for chunk in content.chunks():
                file.write(chunk)
            file.flush()
            os.fsync(file.fileno())
        if self.file_permissions_mode is not None:
            os.chmod(path, self.file_permissions_mode)


def _fsync_folder(directory: str) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
