"""ANALYZE skips the events' payload (see shared.migrations.set_statistics).

Revision ID: dunning_0006
Revises: dunning_0005
"""

from alembic import op

from shared.migrations import current_schema, set_statistics

revision = "dunning_0006"
down_revision = "dunning_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    set_statistics(op, current_schema(), 0, "events.payload")


def downgrade() -> None:
    set_statistics(op, current_schema(), -1, "events.payload")
