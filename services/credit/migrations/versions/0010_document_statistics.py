"""ANALYZE skips the read models' `document` (see shared.migrations.set_statistics).

Revision ID: credit_0010
Revises: credit_0009
"""

from alembic import op

from shared.migrations import current_schema, set_statistics

revision = "credit_0010"
down_revision = "credit_0009"
branch_labels = None
depends_on = None

DOCUMENTS = ("accounts.document", "default_policies.document")


def upgrade() -> None:
    set_statistics(op, current_schema(), 0, *DOCUMENTS)


def downgrade() -> None:
    set_statistics(op, current_schema(), -1, *DOCUMENTS)
