"""ANALYZE skips the events' payload (see shared.migrations.set_statistics).

Revision ID: credit_0009
Revises: credit_0008
"""

from alembic import op

from shared.migrations import current_schema, set_statistics

revision = "credit_0009"
down_revision = "credit_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    set_statistics(op, current_schema(), 0, "events.payload")


def downgrade() -> None:
    set_statistics(op, current_schema(), -1, "events.payload")
