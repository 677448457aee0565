"""The reporting projections: facts learned from the invoice and payments topics, kept so that
any report can be computed as of any past date. Every row is keyed by the ids of the events or
documents it came from, and a stream's rows record the last stream version applied, so applying
an event twice (or an older one late) changes nothing and a rebuild from offset 0 produces the
same rows. Also the tenant's reporting currency and exchange rates (settings, not
projections: a rebuild keeps them).

Revision ID: reporting_0002
Revises: reporting_0001
"""

from alembic import op

from shared.migrations import current_schema

revision = "reporting_0002"
down_revision = "reporting_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = current_schema()
    op.execute(f"""
        CREATE TABLE {s}.customers (
            tenant_id   text NOT NULL,
            customer_id text NOT NULL,
            name        text NOT NULL,
            currency    char(3),
            stream_version integer NOT NULL,  -- the last event applied: older ones are no-ops
            PRIMARY KEY (tenant_id, customer_id)
        )""")
    op.execute(f"""
        CREATE TABLE {s}.invoices (
            tenant_id      text NOT NULL,
            invoice_id     uuid NOT NULL,
            customer_id    text NOT NULL,
            number         text NOT NULL,
            currency       char(3) NOT NULL,
            issue_date     date NOT NULL,
            due_date       date NOT NULL,
            total_minor    bigint NOT NULL,
            status         text NOT NULL CHECK (status IN ('open', 'paid', 'void', 'written_off')),
            closed_on      date,
            paid_on        date,
            stream_version integer NOT NULL,  -- the last event applied: older ones are no-ops
            PRIMARY KEY (tenant_id, invoice_id)
        )""")
    op.execute(f"CREATE INDEX reporting_invoices_customer ON {s}.invoices (tenant_id, customer_id)")
    op.execute(f"CREATE INDEX reporting_invoices_issued ON {s}.invoices (tenant_id, issue_date)")
    op.execute(f"""
        CREATE TABLE {s}.obligations (
            tenant_id      text NOT NULL,
            invoice_id     uuid NOT NULL,
            obligation_key text NOT NULL,
            kind           text NOT NULL CHECK (kind IN ('installment', 'late_fee')),
            seq            integer NOT NULL,
            customer_id    text NOT NULL,
            currency       char(3) NOT NULL,
            arises_on      date NOT NULL,
            due_date       date NOT NULL,
            amount_minor   bigint NOT NULL,
            PRIMARY KEY (tenant_id, invoice_id, obligation_key)
        )""")
    op.execute(
        f"CREATE INDEX reporting_obligations_arising ON {s}.obligations (tenant_id, arises_on)"
    )
    op.execute(f"""
        CREATE TABLE {s}.settlements (
            tenant_id    text NOT NULL,
            event_id     uuid NOT NULL,
            kind         text NOT NULL CHECK (kind IN ('payment', 'discount', 'credit_note',
                                                       'write_off', 'void')),
            invoice_id   uuid NOT NULL,
            customer_id  text NOT NULL,
            currency     char(3) NOT NULL,
            effective_on date NOT NULL,
            amount_minor bigint NOT NULL,
            PRIMARY KEY (tenant_id, event_id, kind)
        )""")
    op.execute(
        f"CREATE INDEX reporting_settlements_invoice ON {s}.settlements (tenant_id, invoice_id)"
    )
    op.execute(
        f"CREATE INDEX reporting_settlements_date ON {s}.settlements (tenant_id, effective_on)"
    )
    op.execute(f"""
        CREATE TABLE {s}.disputes (
            tenant_id    text NOT NULL,
            dispute_id   uuid NOT NULL,
            invoice_id   uuid NOT NULL,
            customer_id  text NOT NULL,
            currency     char(3) NOT NULL,
            amount_minor bigint NOT NULL,
            opened_on    date NOT NULL,
            resolved_on  date,
            outcome      text CHECK (outcome IN ('accepted', 'rejected')),
            PRIMARY KEY (tenant_id, dispute_id)
        )""")
    op.execute(f"CREATE INDEX reporting_disputes_invoice ON {s}.disputes (tenant_id, invoice_id)")
    op.execute(f"""
        CREATE TABLE {s}.payments (
            tenant_id    text NOT NULL,
            payment_id   uuid NOT NULL,
            customer_id  text NOT NULL,
            currency     char(3) NOT NULL,
            amount_minor bigint NOT NULL,
            method       text NOT NULL,
            received_on  date NOT NULL,
            source       text NOT NULL,
            stream_version integer NOT NULL,  -- the last event applied: older ones are no-ops
            PRIMARY KEY (tenant_id, payment_id)
        )""")
    op.execute(f"""
        CREATE TABLE {s}.allocations (
            tenant_id      text NOT NULL,
            allocation_id  uuid NOT NULL,
            payment_id     uuid NOT NULL,
            invoice_id     uuid NOT NULL,
            customer_id    text NOT NULL,
            currency       char(3) NOT NULL,
            amount_minor   bigint NOT NULL,
            allocated_on   date NOT NULL,
            rule           text NOT NULL,
            unallocated_on date,
            PRIMARY KEY (tenant_id, allocation_id)
        )""")
    op.execute(
        f"CREATE INDEX reporting_allocations_invoice ON {s}.allocations (tenant_id, invoice_id)"
    )
    op.execute(f"""
        CREATE TABLE {s}.payment_returns (
            tenant_id    text NOT NULL,
            event_id     uuid NOT NULL,
            payment_id   uuid NOT NULL,
            customer_id  text NOT NULL,
            kind         text NOT NULL CHECK (kind IN ('refund', 'chargeback', 'bounced',
                                                       'returned', 'other')),
            currency     char(3) NOT NULL,
            amount_minor bigint NOT NULL,
            returned_on  date NOT NULL,
            PRIMARY KEY (tenant_id, event_id)
        )""")
    op.execute(f"""
        CREATE TABLE {s}.tenant_settings (
            tenant_id          text PRIMARY KEY,
            reporting_currency char(3) NOT NULL,
            updated_at         timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute(f"""
        CREATE TABLE {s}.fx_rates (
            tenant_id     text NOT NULL,
            currency      char(3) NOT NULL,
            to_currency   char(3) NOT NULL,
            rate_date     date NOT NULL,
            rate          numeric(24, 10) NOT NULL CHECK (rate > 0),
            PRIMARY KEY (tenant_id, currency, to_currency, rate_date)
        )""")


def downgrade() -> None:
    s = current_schema()
    for table in (
        "fx_rates",
        "tenant_settings",
        "payment_returns",
        "allocations",
        "payments",
        "disputes",
        "settlements",
        "obligations",
        "invoices",
        "customers",
    ):
        op.execute(f"DROP TABLE IF EXISTS {s}.{table}")
