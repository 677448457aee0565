"""Invoice read models, terms templates, gapless number series, parked payment allocations.

Revision ID: invoice_0002
Revises: invoice_0001
"""

from alembic import op

from shared.migrations import current_schema

revision = "invoice_0002"
down_revision = "invoice_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = current_schema()
    op.execute(f"""
        CREATE TABLE {s}.customers (
            tenant_id   text NOT NULL,
            customer_id text NOT NULL,
            name        text NOT NULL,
            email       text,
            currency    char(3) NOT NULL,
            version     integer NOT NULL,
            document    jsonb NOT NULL,
            updated_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, customer_id)
        )""")
    op.execute(f"""
        CREATE TABLE {s}.terms_templates (
            tenant_id   text NOT NULL,
            template_id uuid NOT NULL,
            name        text NOT NULL,
            terms       jsonb NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, template_id),
            UNIQUE (tenant_id, name)
        )""")
    op.execute(f"""
        CREATE TABLE {s}.invoices (
            tenant_id      text NOT NULL,
            invoice_id     uuid NOT NULL,
            customer_id    text NOT NULL,
            number         text,
            series         text NOT NULL,
            status         text NOT NULL,
            currency       char(3) NOT NULL,
            total_minor    bigint NOT NULL,
            open_minor     bigint NOT NULL,
            disputed_minor bigint NOT NULL DEFAULT 0,
            issue_date     date,
            due_date       date,
            version        integer NOT NULL,
            document       jsonb NOT NULL,
            created_at     timestamptz NOT NULL DEFAULT now(),
            updated_at     timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, invoice_id)
        )""")
    op.execute(
        f"CREATE UNIQUE INDEX invoices_number ON {s}.invoices (tenant_id, number) WHERE number IS NOT NULL"
    )
    op.execute(
        f"CREATE INDEX invoices_customer ON {s}.invoices (tenant_id, customer_id, created_at, invoice_id)"
    )
    op.execute(
        f"CREATE INDEX invoices_status ON {s}.invoices (tenant_id, status, created_at, invoice_id)"
    )
    op.execute(f"CREATE INDEX invoices_due ON {s}.invoices (tenant_id, due_date)")
    op.execute(f"CREATE INDEX invoices_page ON {s}.invoices (tenant_id, created_at, invoice_id)")
    # Gapless numbering: the counter row is incremented in the transaction that issues the
    # invoice; an aborted issue rolls the increment back, and the row lock serialises issuers.
    op.execute(f"""
        CREATE TABLE {s}.number_series (
            tenant_id  text   NOT NULL,
            series     text   NOT NULL,
            last_value bigint NOT NULL CHECK (last_value >= 0),
            PRIMARY KEY (tenant_id, series)
        )""")
    # Allocations that arrived before the invoice they apply to (topics are not ordered
    # against each other); applied when the invoice is issued.
    op.execute(f"""
        CREATE TABLE {s}.parked_allocations (
            tenant_id     text NOT NULL,
            invoice_id    uuid NOT NULL,
            event_id      uuid NOT NULL,
            event_type    text NOT NULL,
            envelope      jsonb NOT NULL,
            parked_at     timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, invoice_id, event_id)
        )""")


def downgrade() -> None:
    s = current_schema()
    for table in (
        "parked_allocations",
        "number_series",
        "invoices",
        "terms_templates",
        "customers",
    ):
        op.execute(f"DROP TABLE IF EXISTS {s}.{table}")
