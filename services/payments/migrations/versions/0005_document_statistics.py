"""ANALYZE skips the read models' `document` (see shared.migrations.set_statistics).

Revision ID: payments_0005
Revises: payments_0004
"""

from alembic import op

from shared.migrations import current_schema, set_statistics

revision = "payments_0005"
down_revision = "payments_0004"
branch_labels = None
depends_on = None

DOCUMENTS = ("payments.document", "statements.document")


def upgrade() -> None:
    set_statistics(op, current_schema(), 0, *DOCUMENTS)


def downgrade() -> None:
    set_statistics(op, current_schema(), -1, *DOCUMENTS)
