"""Audit kernel: the event hash chain, the dead-letter register, correlation ids required.

Revision ID: credit_0007
Revises: credit_0006
"""

from alembic import op

from shared.migrations import apply_audit, current_schema, drop_audit

revision = "credit_0007"
down_revision = "credit_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_audit(op, current_schema())


def downgrade() -> None:
    drop_audit(op, current_schema())
