"""The references a customer reconciles a statement with: the payer's reference of a payment
and the number of a credit note. Rows projected before this migration keep NULL until the
projections are rebuilt (`ar projections rebuild`).

Revision ID: reporting_0007
Revises: reporting_0006
"""

from alembic import op

from shared.migrations import current_schema

revision = "reporting_0007"
down_revision = "reporting_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = current_schema()
    op.execute(f"ALTER TABLE {s}.payments ADD COLUMN reference text")
    op.execute(f"ALTER TABLE {s}.settlements ADD COLUMN document_number text")


def downgrade() -> None:
    s = current_schema()
    op.execute(f"ALTER TABLE {s}.settlements DROP COLUMN document_number")
    op.execute(f"ALTER TABLE {s}.payments DROP COLUMN reference")
