"""/v1/webhooks: register a URL that gets every event of your jobs, signed, and
see how each delivery went."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from jobgate.api.deps import GatewayDep, UserDep
from jobgate.api.schemas import (
    DeliveryList,
    DeliveryOut,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookOut,
)
from jobgate.service.jobs import MAX_PAGE
from jobgate.store.webhooks import DeliveryStatus

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

# Ids are 64-bit in the store: a larger number can name nothing.
INT64 = 2**63 - 1
WebhookId = Annotated[int, Path(ge=1, le=INT64)]


@router.post("", response_model=WebhookCreated, status_code=201)
def create_webhook(body: WebhookCreate, gateway: GatewayDep, user: UserDep) -> WebhookCreated:
    """Every event of the caller's jobs (an admin's: of all jobs) from now on is
    POSTed to `url` as JSON, with `X-Jobgate-Signature: sha256=<hex HMAC-SHA256
    of the body keyed with the secret>` and `X-Jobgate-Delivery: <id>`. The
    secret is in this answer only."""
    webhook, secret = gateway.webhooks.create(user, body.url, body.secret, body.description)
    return WebhookCreated(**WebhookOut.of(webhook).model_dump(), secret=secret)


@router.get("", response_model=WebhookList)
def list_webhooks(gateway: GatewayDep, user: UserDep) -> WebhookList:
    """The caller's webhooks (an admin: everyone's), with deliveries by status."""
    return WebhookList(webhooks=[WebhookOut.of(w) for w in gateway.webhooks.list_webhooks(user)])


@router.get("/{webhook_id}", response_model=WebhookOut)
def get_webhook(webhook_id: WebhookId, gateway: GatewayDep, user: UserDep) -> WebhookOut:
    return WebhookOut.of(gateway.webhooks.get(webhook_id, user))


@router.delete("/{webhook_id}", status_code=204, response_class=Response)
def delete_webhook(webhook_id: WebhookId, gateway: GatewayDep, user: UserDep) -> Response:
    """Stop sending to it; its deliveries are forgotten."""
    gateway.webhooks.delete(webhook_id, user)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryList)
def list_deliveries(
    webhook_id: WebhookId, gateway: GatewayDep, user: UserDep,
    status: DeliveryStatus | None = None,
    job_id: Annotated[int | None, Query(ge=0, le=INT64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: str | None = None,
) -> DeliveryList:
    """Deliveries, newest event first: status, attempts, the last answer's code
    or error, and when the next try is due."""
    deliveries, next_cursor = gateway.webhooks.deliveries(
        webhook_id, user, status=status, job_id=job_id, limit=limit, cursor=cursor)
    return DeliveryList(deliveries=[DeliveryOut.of(d) for d in deliveries],
                        next_cursor=next_cursor)
