"""Request dependencies as `Annotated` aliases: services, principal, purpose, request id."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, Request

from gateway.errors import ValidationFailed
from gateway.identity import Principal
from gateway.services import Services

__all__ = ["AcknowledgedPurpose", "CurrentPrincipal", "RequestId", "ServicesDep"]

_PURPOSE = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$")


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


ServicesDep = Annotated[Services, Depends(_services)]
RequestId = Annotated[str, Depends(_request_id)]


def _principal(
    services: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    return services.authenticator.authenticate(authorization)


CurrentPrincipal = Annotated[Principal, Depends(_principal)]


def _purpose(
    principal: CurrentPrincipal,
    services: ServicesDep,
    x_purpose: Annotated[str | None, Header(max_length=200)] = None,
) -> str:
    # Credentials are checked first, so an anonymous caller always gets 401, never 422.
    if not x_purpose:
        raise ValidationFailed("the X-Purpose header is required on data routes")
    if not _PURPOSE.match(x_purpose):
        raise ValidationFailed("the X-Purpose header is not a valid purpose name")
    if (
        principal.bound_purpose is not None
        and x_purpose != principal.bound_purpose
        and not x_purpose.startswith(principal.bound_purpose + ".")
    ):
        from gateway.errors import AccessDenied

        raise AccessDenied(f"this token is bound to purpose '{principal.bound_purpose}'")
    services.require_acknowledged(principal, x_purpose)
    return x_purpose


AcknowledgedPurpose = Annotated[str, Depends(_purpose)]
