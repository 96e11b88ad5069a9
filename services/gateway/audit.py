"""The gateway's audit log: logins, failed logins, user changes, prompt decisions,
manual evolutions and rating edits, each with who, when and from where.

Entries are written in the same transaction as the change they describe, so the log
never claims a change that did not happen (nor misses one that did). Prompt
promotions and rollbacks are also audited by the evolution service, with the reason.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.models import AuditEntry


async def record(session: AsyncSession, actor: str | None, action: str, target: str | None,
                 ip: str | None, **details: Any) -> None:
    session.add(AuditEntry(actor=actor, action=action, target=(target or None) and target[:255],
                           ip=ip, details=details))


async def recent(session: AsyncSession, limit: int = 200, actor: str | None = None,
                 action: str | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        query = query.where(AuditEntry.action == action)
    return list((await session.execute(query)).scalars())
