"""Where the Shutterstock API is spoken."""

from syncd.api.client import ApiClient, ApiError, Forbidden, NotFound
from syncd.api.records import LicensePage, LicenseRecord, MalformedResponse

__all__ = [
    "ApiClient",
    "ApiError",
    "Forbidden",
    "NotFound",
    "LicensePage",
    "LicenseRecord",
    "MalformedResponse",
]
