"""ANALYZE skips the events' payload (see shared.migrations.set_statistics).

Revision ID: reporting_0008
Revises: reporting_0007
"""

from alembic import op

from shared.migrations import current_schema, set_statistics

revision = "reporting_0008"
down_revision = "reporting_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    set_statistics(op, current_schema(), 0, "events.payload")


def downgrade() -> None:
    set_statistics(op, current_schema(), -1, "events.payload")
