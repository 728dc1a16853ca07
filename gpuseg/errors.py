"""Errors a user can cause.

Every problem that comes from the user's files, options or machine raises a subclass of
:class:`GpusegError`. Its message names the file, column or option and what was expected;
``gpuseg.cli`` prints it as one line on stderr and exits with code 2. Bugs raise ordinary
Python exceptions and keep their tracebacks.
"""

from __future__ import annotations

__all__ = ["GpusegError", "SchemaError", "DataError", "DeviceError", "ConfigError"]


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
