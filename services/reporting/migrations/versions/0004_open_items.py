"""Open items: each open invoice's open amounts as they stand after every event, and the
tenant's totals of them by currency, due date and issue date, so that today's aging reads a
few thousand rows instead of folding every invoice (see docs/reporting.md).

Tenants with invoices projected before this revision get an incomplete horizon and keep the
slow path until `ar projections rebuild` has run once.

Revision ID: reporting_0004
Revises: reporting_0003
"""

from alembic import op

from shared.migrations import current_schema

revision = "reporting_0004"
down_revision = "reporting_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = current_schema()
    op.execute(f"""
        CREATE TABLE {s}.open_items (
            tenant_id        text NOT NULL,
            invoice_id       uuid NOT NULL,
            seq              integer NOT NULL,  -- the portion's place in due-date order
            customer_id      text NOT NULL,
            currency         char(3) NOT NULL,
            issue_date       date NOT NULL,
            due_date         date NOT NULL,
            undisputed_minor bigint NOT NULL,
            disputed_minor   bigint NOT NULL,
            PRIMARY KEY (tenant_id, invoice_id, seq)
        )""")
    op.execute(
        f"CREATE INDEX reporting_open_items_customer ON {s}.open_items (tenant_id, customer_id)"
    )
    op.execute(f"""
        CREATE TABLE {s}.open_totals (
            tenant_id        text NOT NULL,
            currency         char(3) NOT NULL,
            due_date         date NOT NULL,
            issue_date       date NOT NULL,
            undisputed_minor bigint NOT NULL,
            disputed_minor   bigint NOT NULL,
            invoices         integer NOT NULL,  -- invoices whose oldest open portion is here
            PRIMARY KEY (tenant_id, currency, due_date, issue_date)
        )""")
    op.execute(f"""
        CREATE TABLE {s}.aging_horizons (
            tenant_id text PRIMARY KEY,
            latest_on date NOT NULL,   -- no projected fact of the tenant is dated later
            complete  boolean NOT NULL -- open items cover every invoice of the tenant
        )""")


def downgrade() -> None:
    s = current_schema()
    op.execute(f"DROP TABLE {s}.aging_horizons, {s}.open_totals, {s}.open_items")
