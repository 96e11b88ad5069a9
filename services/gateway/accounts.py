"""Trainer accounts: users and roles, passwords, browser sessions and API tokens.

Decisions:

- Passwords are hashed with Argon2id through ``pwdlib`` (its recommended
  parameters); a hash made with older parameters is upgraded at the next login.
- A browser session is a random token in a signed, HttpOnly, ``SameSite=Lax``
  cookie; the database keeps only its SHA-256, with the time it was opened and
  last used, so an idle session and a too-old one both end, and deactivating a
  user ends every session at once.
- API tokens (``Authorization: Bearer …``) are random, shown once, stored as
  their SHA-256 and revocable.
- Failed logins are audit entries; the rate limit counts them per account and per
  address over a sliding window, so it holds across gateway replicas.
- ``TRAINING_ADMIN_EMAILS`` names admins: a user listed there is an admin whatever
  role was stored.

Nothing here knows about HTTP; ``api/auth.py`` and ``api/deps.py`` call it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pwdlib import PasswordHash
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.db import utcnow
from services.gateway import audit
from services.gateway.errors import (
    GatewayConflict,
    GatewayNotFound,
    GatewayUnauthorized,
    InvalidRequest,
)
from services.gateway.ids import new_id
from services.gateway.models import ApiToken, AuditEntry, User, UserSession
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

Role = Literal["admin", "trainer"]
ROLES: tuple[Role, ...] = ("admin", "trainer")
MIN_PASSWORD_LENGTH = 10
USERNAME_MAX = 120

_hasher = PasswordHash.recommended()
# Verifying against this keeps a login for an unknown user as slow as a real one.
_DUMMY_HASH = _hasher.hash("afinador-timing-equaliser")


class LoginRequired(GatewayUnauthorized):
    code = "login_required"

    def __init__(self) -> None:
        super().__init__()


class AdminOnly(GatewayUnauthorized):
    status_code = 403
    code = "admin_only"

    def __init__(self) -> None:
        super().__init__()


class TrainingClosed(GatewayUnauthorized):
    status_code = 403
    code = "training_closed"

    def __init__(self) -> None:
        super().__init__()


class LoginFailed(GatewayUnauthorized):
    code = "login_failed"

    def __init__(self) -> None:
        super().__init__()


class LoginThrottled(GatewayUnauthorized):
    status_code = 429
    code = "login_throttled"

    def __init__(self, minutes: int) -> None:
        super().__init__(minutes=minutes)


@dataclass(frozen=True)
class CurrentUser:
    """Who is making a request, as the routers and domain functions see it."""

    id: str
    username: str
    role: Role
    via: Literal["session", "token"]

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalise_username(name: str) -> str:
    username = name.strip().lower()
    if not username or len(username) > USERNAME_MAX or any(
            ch.isspace() or not ch.isprintable() for ch in username):
        raise InvalidRequest.because("username", max=USERNAME_MAX)
    return username


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest.because("password_too_short", min=MIN_PASSWORD_LENGTH)


def effective_role(user: User, settings: GatewaySettings) -> Role:
    if user.username in settings.admin_usernames:
        return "admin"
    return "admin" if user.role == "admin" else "trainer"


# users ------------------------------------------------------------------------------
async def find_user(session: AsyncSession, username: str) -> User | None:
    result = await session.execute(select(User).where(User.username == username.strip().lower()))
    return result.scalar_one_or_none()


async def get_user(session: AsyncSession, username: str) -> User:
    user = await find_user(session, username)
    if user is None:
        raise GatewayNotFound.because("user", username=username)
    return user


async def add_user(session: AsyncSession, username: str, password: str, role: Role,
                   *, actor: str | None, ip: str | None = None) -> User:
    username = normalise_username(username)
    check_password_strength(password)
    if role not in ROLES:
        raise InvalidRequest.because("role")
    if await find_user(session, username) is not None:
        raise GatewayConflict.because("user_exists", username=username)
    user = User(id=new_id("usr"), username=username, role=role,
                password_hash=_hasher.hash(password), active=True)
    session.add(user)
    await session.flush()
    await audit.record(session, actor, "user_added", username, ip, role=role)
    return user


async def set_password(session: AsyncSession, username: str, password: str, *,
                       actor: str | None, ip: str | None = None) -> User:
    """Reset a password; every open session of that user ends."""
    check_password_strength(password)
    user = await get_user(session, username)
    user.password_hash = _hasher.hash(password)
    user.password_changed_at = utcnow()
    await _end_sessions(session, user.id)
    await audit.record(session, actor, "password_reset", user.username, ip)
    return user


async def set_active(session: AsyncSession, username: str, active: bool, *,
                     actor: str | None, ip: str | None = None) -> User:
    """Deactivate (ending sessions and tokens at once) or reactivate a user."""
    user = await get_user(session, username)
    user.active = active
    if not active:
        await _end_sessions(session, user.id)
        await session.execute(update(ApiToken).where(ApiToken.user_id == user.id,
                                                     ApiToken.revoked_at.is_(None))
                              .values(revoked_at=utcnow()))
    await audit.record(session, actor, "user_activated" if active else "user_deactivated",
                       user.username, ip)
    return user


async def list_users(session: AsyncSession) -> list[User]:
    return list((await session.execute(select(User).order_by(User.username))).scalars())


async def count_users(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count(User.id)))).scalar_one())


# logging in ---------------------------------------------------------------------------
async def authenticate(sessions: async_sessionmaker[AsyncSession], settings: GatewaySettings,
                       username: str, password: str, ip: str | None) -> User:
    """Check a password, within the rate limits; records success and failure.

    The failure is committed before the error is raised, so it counts towards the
    limit even though the caller's request fails.

    Raises:
        LoginThrottled: too many recent failures for this account or this address.
        LoginFailed: unknown user, wrong password or deactivated user (one message,
            so a caller cannot tell which).
    """
    name = username.strip().lower()[:USERNAME_MAX]
    refusal: LoginFailed | LoginThrottled | None = None
    async with sessions() as session, session.begin():
        window_start = utcnow() - timedelta(minutes=settings.login_window_minutes)
        failures = select(func.count(AuditEntry.id)).where(
            AuditEntry.action == "login_failed", AuditEntry.at >= window_start)
        by_account = (await session.execute(failures.where(AuditEntry.target == name))
                      ).scalar_one()
        by_ip = ((await session.execute(failures.where(AuditEntry.ip == ip))).scalar_one()
                 if ip else 0)
        user = await find_user(session, name)
        if (by_account >= settings.login_max_failures_per_account
                or by_ip >= settings.login_max_failures_per_ip):
            await audit.record(session, None, "login_throttled", name, ip)
            refusal = LoginThrottled(settings.login_window_minutes)
        else:
            valid, new_hash = _hasher.verify_and_update(
                password, user.password_hash if user else _DUMMY_HASH)
            if user is None or not valid or not user.active:
                await audit.record(session, None, "login_failed", name, ip,
                                   reason="inactive" if user and valid else "credentials")
                refusal = LoginFailed()
            else:
                if new_hash:
                    user.password_hash = new_hash
                await audit.record(session, user.username, "login", user.username, ip)
    if refusal is not None:
        raise refusal
    assert user is not None
    return user


async def open_session(session: AsyncSession, user: User, ip: str | None) -> str:
    """A new session for ``user``; returns the token for the cookie (shown once)."""
    token = secrets.token_urlsafe(32)
    session.add(UserSession(token_hash=digest(token), user_id=user.id, ip=ip))
    await session.flush()
    return token


async def close_session(session: AsyncSession, token: str, *, ip: str | None) -> None:
    row = await session.get(UserSession, digest(token))
    if row is not None and row.ended_at is None:
        row.ended_at = utcnow()
        user = await session.get(User, row.user_id)
        await audit.record(session, user.username if user else None, "logout", None, ip)


async def _end_sessions(session: AsyncSession, user_id: str) -> None:
    await session.execute(update(UserSession).where(UserSession.user_id == user_id,
                                                    UserSession.ended_at.is_(None))
                          .values(ended_at=utcnow()))


def session_expired(row: UserSession, settings: GatewaySettings, now: datetime) -> bool:
    idle = timedelta(minutes=settings.session_idle_minutes)
    absolute = timedelta(hours=settings.session_absolute_hours)
    return now - row.last_seen_at > idle or now - row.created_at > absolute


async def user_for_session(session: AsyncSession, settings: GatewaySettings, token: str,
                           now: datetime | None = None) -> CurrentUser | None:
    """The user a session cookie belongs to, or ``None`` (ended, expired, deactivated)."""
    now = now or utcnow()
    row = await session.get(UserSession, digest(token))
    if row is None or row.ended_at is not None:
        return None
    if session_expired(row, settings, now):
        row.ended_at = now
        return None
    user = await session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    if now - row.last_seen_at > timedelta(seconds=60):  # one write a minute at most
        row.last_seen_at = now
    return CurrentUser(user.id, user.username, effective_role(user, settings), "session")


# API tokens ---------------------------------------------------------------------------
async def issue_token(session: AsyncSession, username: str, *, actor: str | None) -> str:
    """A new API token for ``username``; returned once, stored as its hash."""
    user = await get_user(session, username)
    if not user.active:
        raise GatewayConflict.because("user_inactive", username=user.username)
    token = "afn_" + secrets.token_urlsafe(32)
    session.add(ApiToken(id=new_id("tok"), user_id=user.id, token_hash=digest(token)))
    await audit.record(session, actor, "token_issued", user.username, None)
    return token


async def revoke_tokens(session: AsyncSession, username: str, *, actor: str | None) -> int:
    user = await get_user(session, username)
    result = await session.execute(
        update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow()))
    await audit.record(session, actor, "tokens_revoked", user.username, None)
    return int(getattr(result, "rowcount", 0) or 0)


async def user_for_token(session: AsyncSession, settings: GatewaySettings, token: str
                         ) -> CurrentUser | None:
    row = (await session.execute(select(ApiToken).where(
        ApiToken.token_hash == digest(token), ApiToken.revoked_at.is_(None)))).scalar_one_or_none()
    if row is None:
        return None
    user = await session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > timedelta(seconds=60):
        row.last_used_at = now
    return CurrentUser(user.id, user.username, effective_role(user, settings), "token")


# first start --------------------------------------------------------------------------
async def ensure_first_admin(session: AsyncSession, settings: GatewaySettings
                             ) -> tuple[str, str] | None:
    """Create the first admin when there are no users yet.

    ``AFINADOR_ADMIN_USER``/``AFINADOR_ADMIN_PASSWORD`` name it; in development,
    without them, an ``admin`` with a random one-time password is created and the
    pair is returned so the runner can print it. Returns ``None`` when nothing was
    created.
    """
    if await count_users(session):
        return None
    if settings.first_admin_user and settings.first_admin_password:
        await add_user(session, settings.first_admin_user, settings.first_admin_password,
                       "admin", actor="first-start")
        log.info("first admin %s created from AFINADOR_ADMIN_USER", settings.first_admin_user)
        return None
    if settings.environment != "development":
        log.warning("no users yet: add an admin with `python -m scripts.users add NAME "
                    "--role admin` or set AFINADOR_ADMIN_USER/AFINADOR_ADMIN_PASSWORD")
        return None
    password = secrets.token_urlsafe(12)
    await add_user(session, "admin", password, "admin", actor="first-start")
    return "admin", password
