"""The rules of who may do what to jobs: one place that decides.

- A user sees and steers their own jobs; a project's manager sees and steers
  its jobs; a member sees them read-only; an admin sees and does everything.
- Whoever may not see a job is told it does not exist (404, never 403).
- A job goes to a project its user belongs to, and only to the clusters and
  partitions that project may use; its account is the project's.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from jobgate.domain.job import JobRecord
from jobgate.domain.spec import JobSpec
from jobgate.errors import InvalidSpecError, NotFoundError, PermissionDeniedError
from jobgate.service.auth import Principal
from jobgate.store.projects import ProjectRepository
from jobgate.store.tables import JobRow


def require_visible(job: JobRow | JobRecord | None, job_id: int, user: Principal
                    ) -> None:
    """Raises:
    NotFoundError: no such job, or not one `user` may see.
    """
    if job is None or not user.may_see(job.user_name, job.project):
        raise NotFoundError(f"no job {job_id}")


def require_actable(job: JobRow | JobRecord, user: Principal, verb: str) -> None:
    """For a job the caller may see.

    Raises:
        PermissionDeniedError: they may only read it (a project's member).
    """
    if not user.may_act(job.user_name, job.project):
        raise PermissionDeniedError(
            f"{verb}: job {job.id} belongs to {job.user_name} in project {job.project}, "
            f"where you are a member, not a manager (read only)",
            details={"verb": verb, "project": job.project})


class SubmitRules:
    """Which project a job goes to, and whether it may go where it asks."""

    def __init__(self, sessions: sessionmaker[Session], *, require_project: bool = False
                 ) -> None:
        self.sessions = sessions
        self.require_project = require_project

    def authorize(self, spec: JobSpec, cluster: str, partition: str, user: Principal
                  ) -> JobSpec:
        """The spec with its project and the project's account set.

        Raises:
            InvalidSpecError: no project named where one must be (several to
                choose from, or none and the gateway requires one), or no such project.
            PermissionDeniedError: a project the user is not in, or a cluster,
                partition or account the project may not use (named).
        """
        name = spec.project
        if name is None:
            mine = sorted(user.projects)
            if len(mine) > 1:
                raise InvalidSpecError("project", None,
                                       f"you are in several projects ({', '.join(mine)}): "
                                       "name the one to charge")
            if not mine:
                if self.require_project and not user.is_admin:
                    raise InvalidSpecError("project", None,
                                           "you are in no project; ask an admin to add you")
                return spec
            name = mine[0]
        elif not user.is_admin and name not in user.projects:
            raise PermissionDeniedError(
                f"project {name!r}: you are not a member"
                + (f" (service account {user.actor!r} acts for {user.name!r} in "
                   f"{', '.join(sorted(user.projects))})" if user.actor else ""),
                details={"project": name})
        with self.sessions() as session:
            project = ProjectRepository(session).get(name)
            if project is None:
                raise InvalidSpecError("project", name, "no such project")
            clusters, partitions, account = (list(project.clusters), list(project.partitions),
                                             project.account)
        if clusters and cluster not in clusters:
            raise PermissionDeniedError(
                f"project {name!r} may not use cluster {cluster!r}; it may use: "
                f"{', '.join(clusters)}", details={"project": name, "cluster": cluster})
        if partitions and partition not in partitions \
                and f"{cluster}:{partition}" not in partitions:
            raise PermissionDeniedError(
                f"project {name!r} may not use partition {partition!r} of {cluster!r}; it may "
                f"use: {', '.join(partitions)}",
                details={"project": name, "cluster": cluster, "partition": partition})
        if account is not None and spec.account not in (None, account):
            raise PermissionDeniedError(
                f"project {name!r} is charged to account {account!r}, not {spec.account!r}; "
                "leave account out", details={"project": name, "account": spec.account})
        return spec.model_copy(update={"project": name, "account": account or spec.account})
