"""Exceptions with messages meant for the user. The CLI maps them to exit codes."""

from __future__ import annotations


class RaytuiError(Exception):
    """A failure the user can act on; str(exc) is shown as is. Exit code 1."""

    exit_code = 1


class UsageError(RaytuiError):
    """Bad input: a malformed address, multiaddr or option. Exit code 2."""

    exit_code = 2


class ClusterUnreachable(RaytuiError):
    """The Ray cluster (dashboard, GCS or client server) could not be reached."""


class AuthenticationFailed(RaytuiError):
    """The cluster answered 401/403: the Ray auth token is missing or wrong."""
