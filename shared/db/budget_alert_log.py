"""The record of budget-alert thresholds sent (table budget_alert_sent) through SQLAlchemy: the worker's in
embedded mode (SQLite) and the tests'. On PostgreSQL the worker uses its plain asyncpg pool instead
(shared/db/pg_usage.py), with the same semantics (shared/budget_alert_check.py `SentLog`)."""

from collections.abc import Callable, Sequence

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from shared.budget_alert_check import SentThreshold
from shared.db.tables import BudgetAlert, BudgetAlertSent, utc_now

__all__ = ["SqlSentLog"]


class SqlSentLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def sent_thresholds(self, alert_ids: Sequence[str], period_id: str,
                              budget_micros: int) -> list[SentThreshold]:
        """The thresholds of these alerts sent in the period for this budget amount."""
        if not alert_ids:
            return []
        statement = select(BudgetAlertSent.alert_id, BudgetAlertSent.threshold_pct).where(
            col(BudgetAlertSent.alert_id).in_(list(alert_ids)), col(BudgetAlertSent.period_id) == period_id,
            col(BudgetAlertSent.budget_micros) == budget_micros)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).all()
        return [SentThreshold(alert_id, period_id, pct, budget_micros) for alert_id, pct in rows]

    async def record_thresholds(self, sent: Sequence[SentThreshold]) -> None:
        """Store the thresholds, once each. A threshold of an alert deleted meanwhile is not stored: its
        record would have gone with it (the foreign key cascades)."""
        if not sent:
            return
        insert: Callable[[type[BudgetAlertSent]], postgresql.Insert | sqlite.Insert] = (
            postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert)
        now = utc_now()
        async with self._engine.begin() as connection:
            alerts = set((await connection.execute(select(BudgetAlert.id).where(
                col(BudgetAlert.id).in_(sorted({item.alert_id for item in sent}))))).scalars())
            values = [{"alert_id": item.alert_id, "period_id": item.period_id, "threshold_pct": item.threshold_pct,
                       "budget_micros": item.budget_micros, "sent_at": now} for item in sent if item.alert_id in alerts]
            if values:
                await connection.execute(insert(BudgetAlertSent).on_conflict_do_nothing(), values)
