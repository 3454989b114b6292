"""Exception handlers: domain errors become statuses with `{"detail": ...}`, never tracebacks."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from core.echo import MAX_VALUE_CHARS, clip_text, first_items
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
from serving.models import NoModelYetError

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
    detail = clip_text(str(error))
    level = logging.WARNING if status >= 500 else logging.INFO
    logger.log(
        level,
        "%s %s -> %d %s: %s",
        request.method,
        clip_text(request.url.path, max_chars=200),
        status,
        type(error).__name__,
        detail,
    )
    return JSONResponse({"detail": detail}, status_code=status)


def describe_validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Validation errors without echoed input, each message naming its field.

    At most `core.echo.MAX_ITEMS` are described, plus one entry counting the rest, and every
    location part is cut to a bounded length, so a huge invalid body gets a small answer.
    """
    shown, more = first_items(errors)
    described = [_describe(error) for error in shown]
    if more:
        described.append(
            {
                "loc": [],
                "msg": f"{more} invalid field(s) not listed; fix the ones above first",
                "type": "too_many_errors",
            }
        )
    return described


def _describe(error: dict[str, Any]) -> dict[str, Any]:
    loc = [_bounded(part) for part in error.get("loc", ())]
    field = ".".join(str(part) for part in loc if part != "body") or "body"
    message = _FRIENDLY.get(error.get("type", ""), error.get("msg", "is invalid"))
    if error.get("type") == "json_invalid":
        message = f"is not valid JSON ({error.get('ctx', {}).get('error', 'decode error')})"
    return {
        "loc": loc,
        "msg": clip_text(f"{field} {message}", max_chars=300),
        "type": clip_text(str(error.get("type", "")), max_chars=60),
    }


def _bounded(part: Any) -> Any:
    """A location part (a field name, key or index); long keys cut with `core.echo`."""
    return part if isinstance(part, int) else clip_text(str(part), max_chars=MAX_VALUE_CHARS)


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """422 listing the invalid fields by name (the input itself is not echoed back)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse({"detail": describe_validation_errors(errors)}, status_code=422)


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """500 without a traceback; the server log keeps it."""
    logger.exception(
        "Unhandled error on %s %s",
        request.method,
        clip_text(request.url.path, max_chars=200),
        exc_info=exc,
    )
    return JSONResponse(
        {"detail": "internal server error; the server log has the details"}, status_code=500
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above (rate-limit errors are handled in `api.limits`)."""
    app.add_exception_handler(AppError, app_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
