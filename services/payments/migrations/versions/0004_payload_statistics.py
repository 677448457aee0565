"""ANALYZE skips the events' payload (see shared.migrations.set_statistics).

Revision ID: payments_0004
Revises: payments_0003
"""

from alembic import op

from shared.migrations import current_schema, set_statistics

revision = "payments_0004"
down_revision = "payments_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    set_statistics(op, current_schema(), 0, "events.payload")


def downgrade() -> None:
    set_statistics(op, current_schema(), -1, "events.payload")
