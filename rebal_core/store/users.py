"""The users repository: local accounts and identity-provider users, by name or e-mail."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, select

from rebal_core.store.tables import User


class UserRepository:
    def __init__(self, session: Session):
        self.session = session

    def count(self) -> int:
        return self.session.exec(select(func.count()).select_from(User)).one()

    def active_admins(self) -> int:
        return self.session.exec(select(func.count()).select_from(User).where(User.role == "admin", User.active)).one()

    def by_name(self, username: str) -> User | None:
        return self.session.exec(select(User).where(User.username == username)).first()

    def by_email(self, email: str) -> User | None:
        """Case-insensitive (``email`` lower-case)."""
        return self.session.exec(select(User).where(func.lower(User.email) == email)).first()

    def all(self) -> list[User]:
        return list(self.session.exec(select(User).order_by(User.username)).all())

    def save(self, user: User) -> None:
        self.session.add(user)
