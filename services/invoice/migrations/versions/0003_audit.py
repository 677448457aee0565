"""Audit kernel: the event hash chain, the dead-letter register, correlation ids required.

Revision ID: invoice_0003
Revises: invoice_0002
"""

from alembic import op

from shared.migrations import apply_audit, current_schema, drop_audit

revision = "invoice_0003"
down_revision = "invoice_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_audit(op, current_schema())


def downgrade() -> None:
    drop_audit(op, current_schema())
