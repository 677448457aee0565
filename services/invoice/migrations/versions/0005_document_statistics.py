"""ANALYZE skips the read models' `document` (see shared.migrations.set_statistics).

Revision ID: invoice_0005
Revises: invoice_0004
"""

from alembic import op

from shared.migrations import current_schema, set_statistics

revision = "invoice_0005"
down_revision = "invoice_0004"
branch_labels = None
depends_on = None

DOCUMENTS = ("customers.document", "invoices.document")


def upgrade() -> None:
    set_statistics(op, current_schema(), 0, *DOCUMENTS)


def downgrade() -> None:
    set_statistics(op, current_schema(), -1, *DOCUMENTS)
