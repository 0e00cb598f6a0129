"""Who may do what: API roles and the principal behind a request."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Principal", "Role"]


class Role(StrEnum):
    """API roles, each allowed what the ones below it are, and more."""

    VIEWER = "viewer"  # reads everything
    OPERATOR = "operator"  # also creates and cancels events
    ADMIN = "admin"  # also manages the fleet, gateways and keys

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what ``needed`` may."""
        order = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: an API key's id, name and role (recorded in the audit log)."""

    key_id: str
    name: str
    role: Role

    @property
    def label(self) -> str:
        """How the caller appears in audit records: ``apikey:<name>``."""
        return f"apikey:{self.name}"
