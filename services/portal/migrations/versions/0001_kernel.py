"""Kernel tables (events, outbox, inbox, checkpoints, idempotency keys) and the audit chain.

Revision ID: portal_0001
Revises:
"""

from alembic import op

from shared.migrations import apply_audit, apply_kernel, current_schema, drop_audit, drop_kernel

revision = "portal_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = current_schema()
    apply_kernel(op, schema)
    apply_audit(op, schema)


def downgrade() -> None:
    schema = current_schema()
    drop_audit(op, schema)
    drop_kernel(op, schema)
