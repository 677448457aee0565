"""Credit read models: accounts, and per-invoice exposure kept from the invoice event stream.

Revision ID: credit_0002
Revises: credit_0001
"""

from alembic import op

from shared.migrations import current_schema

revision = "credit_0002"
down_revision = "credit_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = current_schema()
    op.execute(f"""
        CREATE TABLE {s}.accounts (
            tenant_id   text NOT NULL,
            customer_id text NOT NULL,
            currency    char(3),
            limit_minor bigint,
            on_hold     boolean NOT NULL DEFAULT false,
            version     integer NOT NULL,
            document    jsonb NOT NULL,
            updated_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, customer_id)
        )""")
    # One row per issued invoice: what it still adds to its customer's exposure.
    op.execute(f"""
        CREATE TABLE {s}.invoice_exposure (
            tenant_id   text NOT NULL,
            invoice_id  uuid NOT NULL,
            customer_id text NOT NULL,
            currency    char(3) NOT NULL,
            open_minor  bigint NOT NULL,
            due_date    date NOT NULL,
            closed      boolean NOT NULL DEFAULT false,
            updated_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, invoice_id)
        )""")
    op.execute(
        f"CREATE INDEX invoice_exposure_customer ON {s}.invoice_exposure (tenant_id, customer_id) WHERE NOT closed"
    )


def downgrade() -> None:
    s = current_schema()
    op.execute(f"DROP TABLE IF EXISTS {s}.invoice_exposure")
    op.execute(f"DROP TABLE IF EXISTS {s}.accounts")
