"""Payment-behaviour facts per invoice, for the risk score (kept from the invoice stream).

Revision ID: credit_0004
Revises: credit_0003
"""

from alembic import op

from shared.migrations import current_schema

revision = "credit_0004"
down_revision = "credit_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = current_schema()
    op.execute(f"""
        ALTER TABLE {s}.invoice_exposure
            ADD COLUMN total_minor bigint,
            ADD COLUMN issue_date  date,
            ADD COLUMN paid_on     date,
            ADD COLUMN disputed    boolean NOT NULL DEFAULT false,
            ADD COLUMN reversals   integer NOT NULL DEFAULT 0""")
    op.execute(
        f"UPDATE {s}.invoice_exposure SET total_minor = open_minor WHERE total_minor IS NULL"
    )


def downgrade() -> None:
    s = current_schema()
    op.execute(f"""
        ALTER TABLE {s}.invoice_exposure DROP COLUMN total_minor, DROP COLUMN issue_date,
            DROP COLUMN paid_on, DROP COLUMN disputed, DROP COLUMN reversals""")
