"""Projects and their members."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from jobgate.store.tables import MembershipRow, ProjectRow, UserRow


class ProjectRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: ProjectRow) -> ProjectRow:
        self.session.add(row)
        self.session.flush()
        return row

    def get(self, name: str) -> ProjectRow | None:
        return self.session.scalars(select(ProjectRow).where(ProjectRow.name == name)).first()

    def all(self) -> list[ProjectRow]:
        return list(self.session.scalars(select(ProjectRow).order_by(ProjectRow.name)))

    def members(self, project_ids: Iterable[int]) -> dict[int, list[tuple[str, str]]]:
        """(user name, role) of each project's members, by project id."""
        ids = list(project_ids)
        found: dict[int, list[tuple[str, str]]] = {i: [] for i in ids}
        if not ids:
            return found
        query = (select(MembershipRow.project_id, UserRow.name, MembershipRow.role)
                 .join(UserRow, UserRow.id == MembershipRow.user_id)
                 .where(MembershipRow.project_id.in_(ids)).order_by(UserRow.name))
        for project_id, name, role in self.session.execute(query):
            found[project_id].append((name, role))
        return found

    def roles_of(self, user_id: int) -> dict[str, str]:
        """The user's projects: name -> role."""
        query = (select(ProjectRow.name, MembershipRow.role)
                 .join(MembershipRow, MembershipRow.project_id == ProjectRow.id)
                 .where(MembershipRow.user_id == user_id))
        return {name: role for name, role in self.session.execute(query)}

    def set_member(self, project: ProjectRow, user: UserRow, role: str) -> None:
        row = self.session.get(MembershipRow, (project.id, user.id))
        if row is None:
            self.session.add(MembershipRow(project_id=project.id, user_id=user.id, role=role))
        else:
            row.role = role
        self.session.flush()

    def remove_member(self, project: ProjectRow, user: UserRow) -> bool:
        result = self.session.execute(delete(MembershipRow).where(
            MembershipRow.project_id == project.id, MembershipRow.user_id == user.id))
        return bool(getattr(result, "rowcount", 0))
