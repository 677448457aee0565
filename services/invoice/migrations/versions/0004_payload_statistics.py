"""ANALYZE skips the events' payload (see shared.migrations.set_statistics).

Revision ID: invoice_0004
Revises: invoice_0003
"""

from alembic import op

from shared.migrations import current_schema, set_statistics

revision = "invoice_0004"
down_revision = "invoice_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    set_statistics(op, current_schema(), 0, "events.payload")


def downgrade() -> None:
    set_statistics(op, current_schema(), -1, "events.payload")
