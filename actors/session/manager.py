"""The session manager: the only code that creates session directories.

The writer never creates a directory or a log, so an append to a session nobody
opened fails with :class:`~contracts.MissingSessionPath` instead of scattering
files for mistyped ids. Opening a session is the explicit, separate step: this
module makes ``<root>/logs/users/<user_id>/sessions/`` exist, and the IO module
(``file_store``) then creates the session's empty log, which is what marks that
one session open.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from contracts import RecorderIOError

from .events import session_path

__all__ = ["create_session_dir"]


def create_session_dir(root: Path, user_id: str, session_id: str) -> bool:
    """Create the directory that holds the session's log (blocking: call off the loop).

    Directories are created with mode 0700: session logs are private.

    Args:
        root: The service root.
        user_id: A safe user id.
        session_id: A safe session id.

    Returns:
        True when this call created the directory, False when it existed.

    Raises:
        InvalidEvent: An id is not safe (nothing is created).
        RecorderIOError: The directory cannot be created, or something other than a
            directory is in its place.
    """
    directory = session_path(root, user_id, session_id).parent
    try:
        os.makedirs(directory.parent, mode=0o700, exist_ok=True)
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            if stat.S_ISDIR(os.lstat(directory).st_mode):
                return False
            raise RecorderIOError("session directory path is taken by something else") from None
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, "EIO")
        raise RecorderIOError(f"session directory could not be created ({name})") from None
    return True
