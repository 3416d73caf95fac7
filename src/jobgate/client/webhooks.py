"""`client.webhooks`: register URLs that get the gateway's events, signed, and
see how their deliveries went."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from jobgate.client.client import Client

DeliveryStatus = Literal["pending", "delivered", "failed"]


class Webhooks:
    """The webhooks of the client's user (an admin: everyone's), as plain dicts
    in the API's form."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(self, url: str, *, secret: str | None = None,
               description: str = "") -> dict[str, Any]:
        """Register `url`; every event of your jobs from now on is POSTed there,
        signed with the secret (`X-Jobgate-Signature: sha256=<hex HMAC>`). The
        answer's `secret` (made by the gateway when none is given) is shown only
        here.

        Raises:
            InvalidSpecError: not an http(s) URL, a secret not 16 to 256
                characters long, or too many webhooks already.
            UnreachableError: the gateway did not answer.
        """
        body: dict[str, Any] = {"url": url, "description": description}
        if secret is not None:
            body["secret"] = secret
        created: dict[str, Any] = self._client._json("POST", "/v1/webhooks", json=body)
        return created

    def list(self) -> builtins.list[dict[str, Any]]:
        """Raises:
        UnreachableError: the gateway did not answer.
        """
        found: builtins.list[dict[str, Any]] = self._client._json(
            "GET", "/v1/webhooks")["webhooks"]
        return found

    def get(self, webhook_id: int) -> dict[str, Any]:
        """One webhook, with its deliveries counted by status.

        Raises:
            NotFoundError: no such webhook, or not one the caller may see.
            UnreachableError: the gateway did not answer.
        """
        found: dict[str, Any] = self._client._json("GET", f"/v1/webhooks/{int(webhook_id)}")
        return found

    def delete(self, webhook_id: int) -> None:
        """Stop sending to a webhook and forget its deliveries.

        Raises:
            NotFoundError: no such webhook, or not one the caller may see.
            UnreachableError: the gateway did not answer.
        """
        self._client._request("DELETE", f"/v1/webhooks/{int(webhook_id)}")

    def deliveries(
        self, webhook_id: int, *, status: DeliveryStatus | None = None,
        job_id: int | None = None, limit: int = 100,
    ) -> builtins.list[dict[str, Any]]:
        """A webhook's latest deliveries, newest event first: status, attempts,
        the last answer's status code or error.

        Raises:
            NotFoundError: no such webhook, or not one the caller may see.
            InvalidSpecError: a bad status or limit.
            UnreachableError: the gateway did not answer.
        """
        params: dict[str, Any] = {"limit": limit}
        if status is not None:
            params["status"] = status
        if job_id is not None:
            params["job_id"] = job_id
        found: builtins.list[dict[str, Any]] = self._client._json(
            "GET", f"/v1/webhooks/{int(webhook_id)}/deliveries", params=params)["deliveries"]
        return found
