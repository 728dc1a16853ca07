"""Errors a user can cause.

Every problem that comes from the user's files, options or machine raises a subclass of
:class:`GpusegError`. Its message names the file, column or option and what was expected;
``gpuseg.cli`` prints it as one line on stderr and exits with code 2. Bugs raise ordinary
Python exceptions and keep their tracebacks.
"""

from __future__ import annotations

import errno
import re

__all__ = ["GpusegError", "SchemaError", "DataError", "DeviceError", "ConfigError", "printable", "os_error_line"]

#: C0 and C1 control characters (terminal escape codes among them), DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """``text`` with control characters (escape sequences, bells, carriage returns) shown
    as ``?``: what a file's header or cell says cannot drive the user's terminal."""
    return _CONTROL.sub("?", str(text))


_OS_REASONS = {errno.ENOSPC: "no space left on the device", errno.EROFS: "the file system is read-only",
               errno.EACCES: "permission denied", errno.EPERM: "not permitted", errno.EDQUOT: "disk quota exceeded",
               errno.ENAMETOOLONG: "the name is too long", errno.EISDIR: "is a folder",
               errno.ENOTDIR: "a part of the path is not a folder", errno.ELOOP: "too many symbolic links"}


def os_error_line(exc: OSError) -> str:
    """One line for an operating-system error: what failed, on which path."""
    reason = _OS_REASONS.get(exc.errno or -1) or (exc.strerror or type(exc).__name__).lower()
    paths = [p for p in (exc.filename, exc.filename2) if p]
    where = " -> ".join(str(p) for p in paths)
    return f"{where}: {reason}" if where else reason


class GpusegError(Exception):
    """Base class of the errors a user can cause and fix."""

    exit_code = 2


class SchemaError(GpusegError):
    """The input's columns do not match what the chosen format needs."""


class DataError(GpusegError):
    """The input cannot be read, is empty, or has no usable rows."""


class DeviceError(GpusegError):
    """The requested device (or the library it needs) is not available."""


class ConfigError(GpusegError):
    """An option or config-file value is missing, unknown or out of range."""
