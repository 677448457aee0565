"""Unapplied cash per customer and currency, kept from the payments stream.

Revision ID: credit_0005
Revises: credit_0004
"""

from alembic import op

from shared.migrations import current_schema

revision = "credit_0005"
down_revision = "credit_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = current_schema()
    # Payments refer to their customer only in PaymentReceived; later events name the payment.
    op.execute(f"""
        CREATE TABLE {s}.payment_cash (
            tenant_id     text NOT NULL,
            payment_id    uuid NOT NULL,
            customer_id   text,
            currency      char(3),
            unapplied_minor bigint NOT NULL DEFAULT 0,
            updated_at    timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, payment_id)
        )""")
    op.execute(
        f"CREATE INDEX payment_cash_customer ON {s}.payment_cash (tenant_id, customer_id, currency)"
    )


def downgrade() -> None:
    op.execute(f"DROP TABLE IF EXISTS {current_schema()}.payment_cash")
