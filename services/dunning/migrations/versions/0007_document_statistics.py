"""ANALYZE skips the read models' `document` (see shared.migrations.set_statistics).

Revision ID: dunning_0007
Revises: dunning_0006
"""

from alembic import op

from shared.migrations import current_schema, set_statistics

revision = "dunning_0007"
down_revision = "dunning_0006"
branch_labels = None
depends_on = None

DOCUMENTS = ("policies.document", "cases.document")


def upgrade() -> None:
    set_statistics(op, current_schema(), 0, *DOCUMENTS)


def downgrade() -> None:
    set_statistics(op, current_schema(), -1, *DOCUMENTS)
