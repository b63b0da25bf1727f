"""Accounts: local users with argon2id password hashes, OIDC sign-ins mapped to users, the first admin.

Role checks happen here and in :mod:`rebal_core.services.workflow`, never only in the pages.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path

from sqlalchemy import Engine

from rebal_core.errors import AccountError, AccountLocked, ConfigurationError  # noqa: F401 (re-exported: callers name them here)
from rebal_core.governance.identity import (
    ROLES,
    Actor,
    hash_password,
    needs_rehash,
    password_problem,
    verify_password,
)
from rebal_core.services.datasets import FIRST_START
from rebal_core.store import audit
from rebal_core.store.database import DATA_DIR
from rebal_core.store.tables import User, UserPublic
from rebal_core.store.unit_of_work import UnitOfWork


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")


def admin_password_file(engine: Engine) -> Path:
    """Where the first start leaves the admin's password: next to an SQLite store, else under data/."""
    if engine.dialect.name == "sqlite" and engine.url.database:
        db = Path(engine.url.database)
        return db.with_name(f"{db.stem}-admin-password.txt")
    return DATA_DIR / "admin-password.txt"


def ensure_admin(*, engine: Engine) -> str | None:
    """First start: create user ``admin`` and say how to sign in; afterwards do nothing (returns None).

    The password is ``REBAL_ADMIN_PASSWORD`` when set, else a random one written
    to ``password_file`` (readable by its owner only).
    """
    with UnitOfWork(engine) as uow:
        if uow.users.count():
            return None
        given = os.environ.get("REBAL_ADMIN_PASSWORD")
        if given is not None and password_problem(given):
            raise ConfigurationError(
                f"REBAL_ADMIN_PASSWORD: {password_problem(given)}; set a stronger one, or unset it and a random "
                f"password is written to {admin_password_file(engine)}"
            )
        password = given or secrets.token_urlsafe(12)
        uow.users.save(
            User(
                username="admin",
                display_name="Administrator",
                role="admin",
                password_hash=hash_password(password),
                created_at=audit.now(),
            )
        )
        uow.record(
            actor=FIRST_START,
            action="user_created",
            object_type="user",
            object_id="admin",
            summary="first start: created user admin (role admin)",
            after={"role": "admin"},
        )
        uow.commit()
    if os.environ.get("REBAL_ADMIN_PASSWORD"):
        return "Sign in as admin with the password in REBAL_ADMIN_PASSWORD, then change it on the Admin page."
    password_file = admin_password_file(engine)
    password_file.parent.mkdir(parents=True, exist_ok=True)
    password_file.write_text(password + "\n", encoding="utf-8")
    password_file.chmod(0o600)
    return f"Sign in as admin with the password in {password_file}, then change it on the Admin page."


LOCK_AFTER = 5  # failed sign-ins in a row before the account is locked
LOCK_SECONDS = 60  # the first lock; doubled for every further failure, at most MAX_LOCK_SECONDS
MAX_LOCK_SECONDS = 3600
_DUMMY_HASH = hash_password(secrets.token_urlsafe(24))  # checked for unknown users: the same work either way


def lock_seconds(failures: int) -> int:
    """Back-off: 0 below LOCK_AFTER failures, then 60 s, 120 s, 240 s... up to an hour."""
    if failures < LOCK_AFTER:
        return 0
    return int(min(MAX_LOCK_SECONDS, LOCK_SECONDS * 2 ** (failures - LOCK_AFTER)))


def authenticate(*, engine: Engine, username: str, password: str) -> Actor | None:
    """The actor for a correct local sign-in, else None (same answer and the same work for an unknown
    user and a wrong password). Failures are audited; after LOCK_AFTER in a row the account locks
    with back-off (:class:`AccountLocked`, even for the right password) until the time is up or an
    admin unlocks it."""
    name = username.strip()
    with UnitOfWork(engine) as uow:
        user = uow.users.by_name(name)
        ok = verify_password(user.password_hash if user is not None and user.password_hash else _DUMMY_HASH, password)
        if user is not None and ok and user.password_hash is None:
            ok = False
        now = audit.now()
        if user is not None and user.locked_until is not None and user.locked_until > now:
            wait = int((user.locked_until - now).total_seconds()) + 1
            uow.record(
                actor=Actor(name[:120] or "?", "viewer"),
                action="sign_in_failed",
                object_type="user",
                object_id=name[:120],
                summary=f"sign-in as {name!r} refused: the account is locked for {wait} s more",
            )
            uow.commit()
            raise AccountLocked(
                f"too many failed sign-ins: this account is locked for {wait} more second(s); try later, or ask an admin to unlock it"
            )
        if user is None or not user.active or not ok:
            uow.record(
                actor=Actor(name[:120] or "?", "viewer"),
                action="sign_in_failed",
                object_type="user",
                object_id=name[:120],
                summary=f"failed sign-in as {name[:120]!r}" + ("" if user is not None else " (no such user)"),
            )
            if user is not None:
                user.failed_sign_ins += 1
                seconds = lock_seconds(user.failed_sign_ins)
                if seconds:
                    user.locked_until = now + dt.timedelta(seconds=seconds)
                    uow.record(
                        actor=Actor(name, "viewer"),
                        action="account_locked",
                        object_type="user",
                        object_id=name,
                        summary=f"{name} locked for {seconds} s after {user.failed_sign_ins} failed sign-ins in a row",
                    )
                uow.users.save(user)
            uow.commit()
            return None
        if user.failed_sign_ins or user.locked_until is not None:
            user.failed_sign_ins, user.locked_until = 0, None
            uow.users.save(user)
        if needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
            uow.users.save(user)
        uow.commit()
        return Actor(user.username, user.role)


def unlock_user(*, engine: Engine, actor: Actor, username: str) -> None:
    """An admin lifts a sign-in lock (audited)."""
    actor.require("manage_users")
    with UnitOfWork(engine) as uow:
        user = _user(uow, username)
        before = {
            "failed_sign_ins": user.failed_sign_ins,
            "locked_until": str(user.locked_until) if user.locked_until else None,
        }
        user.failed_sign_ins, user.locked_until = 0, None
        uow.users.save(user)
        uow.record(
            actor=actor,
            action="account_unlocked",
            object_type="user",
            object_id=username,
            summary=f"{username} unlocked",
            before=before,
        )
        uow.commit()


def actor_for_oidc(*, engine: Engine, email: str, name: str = "") -> Actor | None:
    """The actor for an identity-provider sign-in; a first sign-in creates a viewer (an admin grants more)."""
    email = email.strip().lower()
    if not email:
        return None
    with UnitOfWork(engine) as uow:
        user = uow.users.by_email(email)
        if user is None:
            user = User(username=email, display_name=name, role="viewer", email=email, created_at=audit.now())
            uow.users.save(user)
            uow.record(
                actor=Actor(email, "viewer"),
                action="user_created",
                object_type="user",
                object_id=email,
                summary=f"first sign-in through the identity provider: {email} (viewer)",
                after={"role": "viewer"},
            )
            uow.commit()
        return Actor(user.username, user.role) if user.active else None


def list_users(*, engine: Engine) -> list[UserPublic]:
    with UnitOfWork(engine) as uow:
        return [UserPublic.model_validate(u) for u in uow.users.all()]


def create_user(
    *,
    engine: Engine,
    actor: Actor,
    username: str,
    role: str,
    password: str | None = None,
    email: str | None = None,
    display_name: str = "",
) -> UserPublic:
    actor.require("manage_users")
    username = username.strip()
    if not username:
        raise AccountError("a user needs a name")
    _check_role(role)
    if password is not None and password_problem(password):
        raise AccountError(password_problem(password))
    with UnitOfWork(engine) as uow:
        if uow.users.by_name(username):
            raise AccountError(f"a user named {username!r} already exists")
        user = User(
            username=username,
            display_name=display_name,
            role=role,
            email=(email or None) and email.strip().lower(),
            password_hash=hash_password(password) if password else None,
            created_at=audit.now(),
        )
        uow.users.save(user)
        uow.record(
            actor=actor,
            action="user_created",
            object_type="user",
            object_id=username,
            summary=f"created user {username} ({role})",
            after={"role": role, "email": user.email},
        )
        uow.commit()
        uow.refresh(user)
        return UserPublic.model_validate(user)


def _user(uow: UnitOfWork, username: str) -> User:
    user = uow.users.by_name(username)
    if user is None:
        raise AccountError(f"no user named {username!r}")
    return user


def update_user(
    *, engine: Engine, actor: Actor, username: str, role: str | None = None, active: bool | None = None
) -> UserPublic:
    """Change a user's role or lock/unlock them (admin); the last active admin cannot be demoted or locked."""
    actor.require("manage_users")
    if role is not None:
        _check_role(role)
    with UnitOfWork(engine) as uow:
        user = _user(uow, username)
        before = {"role": user.role, "active": user.active}
        new_role = role if role is not None else user.role
        new_active = active if active is not None else user.active
        if user.role == "admin" and user.active and (new_role != "admin" or not new_active):
            admins = uow.users.active_admins()
            if admins <= 1:
                raise AccountError(f"{username} is the last active admin; make another admin first")
        user.role, user.active = new_role, new_active
        uow.users.save(user)
        after = {"role": new_role, "active": new_active}
        uow.record(
            actor=actor,
            action="user_changed",
            object_type="user",
            object_id=username,
            summary=f"user {username}: {before} -> {after}",
            before=before,
            after=after,
        )
        uow.commit()
        uow.refresh(user)
        return UserPublic.model_validate(user)


def set_password(*, engine: Engine, actor: Actor, username: str, password: str, current: str | None = None) -> None:
    """Users change their own password (giving the current one); admins reset anyone's."""
    problem = password_problem(password)
    if problem:
        raise AccountError(problem)
    with UnitOfWork(engine) as uow:
        user = _user(uow, username)
        if actor.username == username:
            if user.password_hash and not verify_password(user.password_hash, current or ""):
                raise AccountError("the current password is wrong")
        else:
            actor.require("manage_users")
        user.password_hash = hash_password(password)
        uow.users.save(user)
        uow.record(
            actor=actor,
            action="password_changed",
            object_type="user",
            object_id=username,
            summary=f"password of {username} changed",
        )
        uow.commit()
    if username == "admin":
        admin_password_file(engine).unlink(missing_ok=True)  # the first-start password is no longer valid


def actor_of(*, engine: Engine, username: str) -> Actor | None:
    """The current role of a signed-in user (re-read on every page run, so a role change or lock applies at once)."""
    with UnitOfWork(engine) as uow:
        user = uow.users.by_name(username)
        return Actor(user.username, user.role) if user is not None and user.active else None
