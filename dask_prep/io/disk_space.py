"""A full disk named: the out-of-space error of any write, whatever library raised it, says which file."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator


@contextlib.contextmanager
def naming_the_file(path: str) -> Iterator[None]:
    """An out-of-space (or quota) error raised in the block names `path`, what was being written.

    Also one that a library wrapped in its own error (`datasets`' DatasetGenerationError
    while it writes its Arrow cache): the error becomes the OSError it hides.
    """
    try:
        yield
    except Exception as exc:
        full = _out_of_space(exc)
        if full is None or (full is exc and path in str(exc)):
            raise
        raise OSError(full.errno, f"{full.strerror} while writing {path}", full.filename) from exc


def _out_of_space(exc: BaseException) -> OSError | None:
    """The out-of-space or quota OSError that `exc` is or was caused by (its chain), if any."""
    seen: set[int] = set()
    found: BaseException | None = exc
    while found is not None and id(found) not in seen:
        if isinstance(found, OSError) and found.errno in (errno.ENOSPC, errno.EDQUOT):
            return found
        seen.add(id(found))
        found = found.__cause__ or found.__context__
    return None
