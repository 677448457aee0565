"""ANALYZE skips the events' payload (see shared.migrations.set_payload_statistics).

Revision ID: invoice_0004
Revises: invoice_0003
"""

from alembic import op

from shared.migrations import current_schema, set_payload_statistics

revision = "invoice_0004"
down_revision = "invoice_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    set_payload_statistics(op, current_schema(), 0)


def downgrade() -> None:
    set_payload_statistics(op, current_schema(), -1)
