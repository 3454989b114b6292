"""Exception handlers: domain errors become statuses with `{"detail": ...}`, never tracebacks."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.models import NoModelYetError
from core.errors import (
    AppError,
    ConfigError,
    DataError,
    ExchangeError,
    FeatureMismatchError,
    ModelError,
    ModelNotFoundError,
    StorageError,
)

logger = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[AppError], int] = {
    NoModelYetError: 503,
    FeatureMismatchError: 422,
    ModelNotFoundError: 404,
    ModelError: 503,
    DataError: 422,
    ExchangeError: 503,
    StorageError: 503,
    ConfigError: 500,
    AppError: 500,
}
"""Status per domain error; the most specific class in the exception's MRO wins."""

_FRIENDLY = {
    "finite_number": "must be a finite number (NaN and Infinity are not allowed)",
    "float_type": "must be a JSON number (strings, booleans and null are not converted)",
    "int_type": "must be an integer (epoch milliseconds)",
    "missing": "is required",
    "extra_forbidden": "is not an allowed field",
}


def status_of(error: AppError) -> int:
    """The HTTP status of a domain error.

    >>> status_of(NoModelYetError("x")), status_of(ModelNotFoundError("x"))
    (503, 404)
    """
    for klass in type(error).__mro__:
        if klass in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[klass]
    return 500


async def app_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Map an `AppError` to its status; the message already says what to do."""
    error = exc if isinstance(exc, AppError) else AppError(str(exc))
    status = status_of(error)
    level = logging.WARNING if status >= 500 else logging.INFO
    logger.log(
        level,
        "%s %s -> %d %s: %s",
        request.method,
        request.url.path,
        status,
        type(error).__name__,
        error,
    )
    return JSONResponse({"detail": str(error)}, status_code=status)


def describe_validation_errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors without echoed input, each message naming its field."""
    described = []
    for error in errors:
        loc = [part for part in error.get("loc", ()) if part != "body"] or ["body"]
        field = ".".join(str(part) for part in loc)
        message = _FRIENDLY.get(error.get("type", ""), error.get("msg", "is invalid"))
        if error.get("type") == "json_invalid":
            message = f"is not valid JSON ({error.get('ctx', {}).get('error', 'decode error')})"
        described.append(
            {"loc": list(error.get("loc", ())), "msg": f"{field} {message}", "type": error["type"]}
        )
    return described


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """422 listing every invalid field by name (the input itself is not echoed back)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse({"detail": describe_validation_errors(errors)}, status_code=422)


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """500 without a traceback; the server log keeps it."""
    logger.exception("Unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        {"detail": "internal server error; the server log has the details"}, status_code=500
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above (rate-limit errors are handled in `api.limits`)."""
    app.add_exception_handler(AppError, app_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
