"""Sweep marks on accounts: the hold sweeper reviews each account at most once a day.

`swept_on` is the day the sweeper last reviewed the account; `swept_inputs` fingerprints what the
rules read from the account then (policy, limit, holds), so an account changed since is swept
again that day. No index: the sweep reads every account row once and filters on these columns.

Revision ID: credit_0008
Revises: credit_0007
"""

from alembic import op

from shared.migrations import current_schema

revision = "credit_0008"
down_revision = "credit_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(f"""
        ALTER TABLE {current_schema()}.accounts
            ADD COLUMN swept_on     date,
            ADD COLUMN swept_inputs text""")


def downgrade() -> None:
    op.execute(
        f"ALTER TABLE {current_schema()}.accounts DROP COLUMN swept_on, DROP COLUMN swept_inputs"
    )
