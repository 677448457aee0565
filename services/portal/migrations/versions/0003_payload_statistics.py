"""ANALYZE skips the events' payload (see shared.migrations.set_statistics).

Revision ID: portal_0003
Revises: portal_0002
"""

from alembic import op

from shared.migrations import current_schema, set_statistics

revision = "portal_0003"
down_revision = "portal_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    set_statistics(op, current_schema(), 0, "events.payload")


def downgrade() -> None:
    set_statistics(op, current_schema(), -1, "events.payload")
