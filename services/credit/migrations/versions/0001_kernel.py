"""Kernel tables: events (append-only, the outbox), inbox, checkpoints, idempotency keys.

Revision ID: credit_0001
Revises:
"""

from alembic import op

from shared.migrations import apply_kernel, current_schema, drop_kernel

revision = "credit_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_kernel(op, current_schema())


def downgrade() -> None:
    drop_kernel(op, current_schema())
