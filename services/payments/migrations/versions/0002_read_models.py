"""Read models: payments, what payments knows of invoices, aliases, match proposals and
outcomes, statement lines, gateway webhook de-duplication.

Revision ID: payments_0002
Revises: payments_0001
"""

from alembic import op

from shared.migrations import current_schema

revision = "payments_0002"
down_revision = "payments_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = current_schema()
    op.execute(f"""
        CREATE TABLE {s}.payments (
            tenant_id       text NOT NULL,
            payment_id      uuid NOT NULL,
            customer_id     text NOT NULL,
            currency        char(3) NOT NULL,
            amount_minor    bigint NOT NULL,
            unapplied_minor bigint NOT NULL,
            method          text NOT NULL,
            status          text NOT NULL,
            received_on     date NOT NULL,
            reference       text,
            gateway_ref     text,
            needs_review    boolean NOT NULL DEFAULT false,
            version         integer NOT NULL,
            document        jsonb NOT NULL,
            created_at      timestamptz NOT NULL DEFAULT now(),
            updated_at      timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, payment_id)
        )""")
    op.execute(
        f"CREATE INDEX payments_customer ON {s}.payments (tenant_id, customer_id, received_on DESC, payment_id)"
    )
    op.execute(
        f"CREATE UNIQUE INDEX payments_gateway_ref ON {s}.payments (tenant_id, gateway_ref) WHERE gateway_ref IS NOT NULL"
    )
    op.execute(
        f"CREATE INDEX payments_review ON {s}.payments (tenant_id, received_on, payment_id) WHERE needs_review"
    )
    # What this service knows of each invoice: amounts from invoice events, plus its own
    # allocations (written in the allocating transaction, under this row's lock).
    op.execute(f"""
        CREATE TABLE {s}.invoice_balances (
            tenant_id         text NOT NULL,
            invoice_id        uuid NOT NULL,
            customer_id       text NOT NULL,
            number            text,
            currency          char(3) NOT NULL,
            status            text NOT NULL,
            issue_date        date,
            due_date          date,
            total_due_minor   bigint NOT NULL DEFAULT 0,
            credited_minor    bigint NOT NULL DEFAULT 0,
            written_off_minor bigint NOT NULL DEFAULT 0,
            discount_minor    bigint NOT NULL DEFAULT 0,
            allocated_minor   bigint NOT NULL DEFAULT 0,
            discount_percent  numeric,
            discount_days     integer,
            updated_at        timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, invoice_id)
        )""")
    op.execute(
        f"CREATE INDEX invoice_balances_customer ON {s}.invoice_balances (tenant_id, customer_id, currency) WHERE status = 'open'"
    )
    op.execute(f"CREATE INDEX invoice_balances_number ON {s}.invoice_balances (tenant_id, number)")
    op.execute(f"""
        CREATE TABLE {s}.customer_aliases (
            tenant_id   text NOT NULL,
            alias       text NOT NULL,  -- normalised
            display     text NOT NULL,
            customer_id text NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, alias)
        )""")
    # Candidates below the auto-apply threshold, waiting for a person.
    op.execute(f"""
        CREATE TABLE {s}.match_proposals (
            tenant_id   text NOT NULL,
            proposal_id uuid NOT NULL,
            payment_id  uuid,
            line_id     uuid,
            customer_id text NOT NULL,
            rule        text NOT NULL,
            confidence  numeric NOT NULL,
            explanation text NOT NULL,
            allocations jsonb NOT NULL,
            status      text NOT NULL DEFAULT 'pending',
            decided_by  text,
            created_at  timestamptz NOT NULL DEFAULT now(),
            decided_at  timestamptz,
            PRIMARY KEY (tenant_id, proposal_id),
            CHECK ((payment_id IS NULL) <> (line_id IS NULL))
        )""")
    op.execute(
        f"CREATE INDEX match_proposals_pending ON {s}.match_proposals (tenant_id, created_at) WHERE status = 'pending'"
    )
    # The first outcome of automatic matching for each payment or line: the auto-match rate.
    op.execute(f"""
        CREATE TABLE {s}.match_outcomes (
            tenant_id   text NOT NULL,
            subject_id  uuid NOT NULL,  -- payment or statement line
            subject     text NOT NULL,  -- payment | statement_line
            outcome     text NOT NULL,  -- auto_applied | proposed | unmatched
            rule        text,
            confidence  numeric,
            decided_on  date NOT NULL,
            PRIMARY KEY (tenant_id, subject_id)
        )""")
    op.execute(f"""
        CREATE TABLE {s}.statement_lines (
            tenant_id      text NOT NULL,
            line_id        uuid NOT NULL,
            statement_id   uuid NOT NULL,
            fingerprint    text NOT NULL,
            booking_date   date NOT NULL,
            amount_minor   bigint NOT NULL,
            currency       char(3) NOT NULL,
            reference      text NOT NULL,
            counterparty   text,
            bank_reference text,
            status         text NOT NULL,  -- unmatched | matched | ignored | outgoing
            payment_id     uuid,
            customer_id    text,
            rule           text,
            PRIMARY KEY (tenant_id, line_id),
            UNIQUE (tenant_id, fingerprint)
        )""")
    op.execute(
        f"CREATE INDEX statement_lines_status ON {s}.statement_lines (tenant_id, status, booking_date, line_id)"
    )
    op.execute(
        f"CREATE INDEX statement_lines_statement ON {s}.statement_lines (tenant_id, statement_id, booking_date, line_id)"
    )
    op.execute(f"""
        CREATE TABLE {s}.statements (
            tenant_id    text NOT NULL,
            statement_id uuid NOT NULL,
            document     jsonb NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, statement_id)
        )""")
    op.execute(f"""
        CREATE TABLE {s}.webhook_events (
            tenant_id   text NOT NULL,
            event_id    text NOT NULL,
            event_type  text NOT NULL,
            outcome     text NOT NULL,
            payment_id  uuid,
            received_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, event_id)
        )""")


def downgrade() -> None:
    s = current_schema()
    for table in (
        "webhook_events",
        "statements",
        "statement_lines",
        "match_outcomes",
        "match_proposals",
        "customer_aliases",
        "invoice_balances",
        "payments",
    ):
        op.execute(f"DROP TABLE IF EXISTS {s}.{table}")
