"""`Admin(client)`: users, projects, memberships and tokens through the admin
API (an admin's token), as plain dicts in the API's form."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from jobgate.client.client import Client


class Admin:
    """Raises (every method): PermissionDeniedError for a token that is not an
    admin's; NotFoundError, ConflictError, InvalidSpecError as the API answers;
    UnreachableError when the gateway does not answer."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._client._json(method, path, **kwargs)

    def me(self) -> dict[str, Any]:
        found: dict[str, Any] = self._json("GET", "/v1/me")
        return found

    def add_user(self, name: str, *, display_name: str = "", is_admin: bool = False,
                 roles: builtins.list[str] | None = None) -> dict[str, Any]:
        user: dict[str, Any] = self._json("POST", "/v1/admin/users", json={
            "name": name, "display_name": display_name, "is_admin": is_admin,
            "roles": roles or []})
        return user

    def users(self) -> builtins.list[dict[str, Any]]:
        users: builtins.list[dict[str, Any]] = self._json("GET", "/v1/admin/users")["users"]
        return users

    def set_user_active(self, name: str, active: bool) -> dict[str, Any]:
        user: dict[str, Any] = self._json("PATCH", f"/v1/admin/users/{quote(name, safe='')}",
                                          json={"active": active})
        return user

    def add_project(self, name: str, **fields: Any) -> dict[str, Any]:
        project: dict[str, Any] = self._json("POST", "/v1/admin/projects",
                                             json={"name": name, **fields})
        return project

    def projects(self) -> builtins.list[dict[str, Any]]:
        projects: builtins.list[dict[str, Any]] = self._json(
            "GET", "/v1/admin/projects")["projects"]
        return projects

    def set_member(self, project: str, user: str, role: str = "member") -> dict[str, Any]:
        found: dict[str, Any] = self._json("PUT", _member(project, user), json={"role": role})
        return found

    def remove_member(self, project: str, user: str) -> dict[str, Any]:
        found: dict[str, Any] = self._json("DELETE", _member(project, user))
        return found

    def create_token(self, user: str, *, label: str = "", expires_at: str | None = None,
                     acts_for: builtins.list[str] | None = None) -> dict[str, Any]:
        """The answer's `token` is the secret, shown this once."""
        token: dict[str, Any] = self._json("POST", "/v1/admin/tokens", json={
            "user": user, "label": label, "expires_at": expires_at, "acts_for": acts_for})
        return token

    def tokens(self, user: str | None = None) -> builtins.list[dict[str, Any]]:
        params = {"user": user} if user else {}
        tokens: builtins.list[dict[str, Any]] = self._json(
            "GET", "/v1/admin/tokens", params=params)["tokens"]
        return tokens

    def revoke_token(self, key_id: str) -> None:
        self._client._request("DELETE", f"/v1/admin/tokens/{quote(key_id, safe='')}")


def _member(project: str, user: str) -> str:
    return f"/v1/admin/projects/{quote(project, safe='')}/members/{quote(user, safe='')}"
