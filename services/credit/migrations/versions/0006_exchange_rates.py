"""Recorded exchange rates, for exposure across currencies (append-only: a new rate is a new row).

Revision ID: credit_0006
Revises: credit_0005
"""

from alembic import op

from shared.migrations import current_schema

revision = "credit_0006"
down_revision = "credit_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = current_schema()
    op.execute(f"""
        CREATE TABLE {s}.exchange_rates (
            tenant_id     text    NOT NULL,
            from_currency char(3) NOT NULL,
            to_currency   char(3) NOT NULL,
            as_of         date    NOT NULL,
            rate          numeric(24, 12) NOT NULL CHECK (rate > 0),
            recorded_by   text    NOT NULL,
            recorded_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, from_currency, to_currency, as_of, recorded_at)
        )""")


def downgrade() -> None:
    op.execute(f"DROP TABLE IF EXISTS {current_schema()}.exchange_rates")
