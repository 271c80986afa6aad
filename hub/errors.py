"""One exception family for the hub; the API maps each leaf to one HTTP status."""

from __future__ import annotations

from dataclasses import dataclass


class HubError(Exception):
    """Base of every error the hub raises on purpose."""

    status = 500
    code = "internal_error"

    def to_json(self) -> dict[str, object]:
        return {"code": self.code, "message": str(self)}


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a config file, located at file:line:column and a key path."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        if not self.line:  # the file itself (cannot be read), not a place in it
            return f"{self.file}: {self.message}"
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path or '<root>'}: {self.message}"


class ConfigError(HubError):
    """The config is invalid; carries every problem found, not just the first."""

    status = 400
    code = "config_invalid"

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ValidationError(HubError):
    """A request or definition has a bad field."""

    status = 400
    code = "invalid"

    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        super().__init__(message)

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": str(self)}
        if self.field is not None:
            body["field"] = self.field
        return body


class NotFound(HubError):
    status = 404
    code = "not_found"


class Conflict(HubError):
    status = 409
    code = "conflict"


class AuthError(HubError):
    """Missing or bad credentials."""

    status = 401
    code = "unauthorized"


class PermissionDenied(HubError):
    status = 403
    code = "forbidden"


class TooManyRequests(HubError):
    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class RequestTimeout(HubError):
    """The client took too long to send its request (the connection is closed after)."""

    status = 408
    code = "request_timeout"


class DeviceUnavailable(HubError):
    status = 503
    code = "device_unavailable"


class StorageError(HubError):
    code = "storage_error"


class StorageFull(StorageError):
    """The disk holding the database is full: nothing was written; reads still work."""

    status = 507
    code = "storage_full"


class IntegrationError(HubError):
    """An integration failed to load or crashed."""

    code = "integration_error"


class EgressDenied(HubError):
    """An outbound connection was refused by the no-egress-unasked policy."""

    status = 403
    code = "egress_denied"
