"""A customer's payments and returns without scanning the tenant's: the statement (and any
per-customer read) filtered them by customer_id behind a (tenant_id, payment_id) key only.
Measured on 500,000 payments of one tenant (5,000 customers): one customer's rows 93 ms by a
parallel sequential scan, 0.24 ms with the index.

Revision ID: reporting_0006
Revises: reporting_0005
"""

from alembic import op

from shared.migrations import current_schema

revision = "reporting_0006"
down_revision = "reporting_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = current_schema()
    op.execute(
        f"CREATE INDEX reporting_payments_customer ON {s}.payments "
        "(tenant_id, customer_id, received_on)"
    )
    op.execute(
        f"CREATE INDEX reporting_payment_returns_customer ON {s}.payment_returns "
        "(tenant_id, customer_id, returned_on)"
    )


def downgrade() -> None:
    s = current_schema()
    op.execute(f"DROP INDEX {s}.reporting_payment_returns_customer")
    op.execute(f"DROP INDEX {s}.reporting_payments_customer")
