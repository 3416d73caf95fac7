"""/v1/clusters: what each cluster offers and how busy it is."""

from __future__ import annotations

from fastapi import APIRouter

from jobgate.api.deps import GatewayDep, UserDep
from jobgate.api.schemas import ClusterList, ClusterOut

router = APIRouter(prefix="/v1/clusters", tags=["clusters"])


@router.get("", response_model=ClusterList)
def list_clusters(gateway: GatewayDep, _user: UserDep) -> ClusterList:
    return ClusterList(clusters=[ClusterOut(**gateway.clusters.describe(name))
                                 for name in gateway.clusters.names()])


@router.get("/{name}", response_model=ClusterOut)
def get_cluster(name: str, gateway: GatewayDep, _user: UserDep) -> ClusterOut:
    """Partitions and their limits, supported verbs, resources and current load."""
    return ClusterOut(**gateway.clusters.describe(name))
