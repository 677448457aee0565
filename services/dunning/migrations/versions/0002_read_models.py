"""Read models of the dunning service: invoices and customers learned from the invoice streams,
payment behaviour, policies, cases, the e-mail outbox, call tasks, approvals, escalations.

Revision ID: dunning_0002
Revises: dunning_0001
"""

from alembic import op

from shared.migrations import current_schema

revision = "dunning_0002"
down_revision = "dunning_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = current_schema()
    op.execute(f"""
        CREATE TABLE {s}.invoices (
            tenant_id        text NOT NULL,
            invoice_id       uuid NOT NULL,
            customer_id      text NOT NULL,
            number           text,
            currency         char(3) NOT NULL,
            status           text NOT NULL,  -- draft | open | closed
            issue_date       date,
            due_date         date,
            open_minor       bigint NOT NULL DEFAULT 0,
            disputed_minor   bigint NOT NULL DEFAULT 0,
            disputes         jsonb NOT NULL DEFAULT '{{}}',
            updated_at       timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, invoice_id)
        )""")
    op.execute(
        f"CREATE INDEX dunning_invoices_open ON {s}.invoices (tenant_id, due_date) WHERE status = 'open'"
    )
    op.execute(f"CREATE INDEX dunning_invoices_customer ON {s}.invoices (tenant_id, customer_id)")
    op.execute(f"""
        CREATE TABLE {s}.customers (
            tenant_id   text NOT NULL,
            customer_id text NOT NULL,
            name        text,
            email       text,
            segment     text,
            paid_count      integer NOT NULL DEFAULT 0,
            on_time_count   integer NOT NULL DEFAULT 0,
            days_late_sum   bigint NOT NULL DEFAULT 0,
            last_run_at     timestamptz,
            PRIMARY KEY (tenant_id, customer_id)
        )""")
    op.execute(f"""
        CREATE TABLE {s}.policies (
            tenant_id  text NOT NULL,
            scope      text NOT NULL,
            document   jsonb NOT NULL,
            version    integer NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, scope)
        )""")
    op.execute(f"""
        CREATE TABLE {s}.cases (
            tenant_id   text NOT NULL,
            customer_id text NOT NULL,
            version     integer NOT NULL,
            document    jsonb NOT NULL,
            updated_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, customer_id)
        )""")
    # E-mails to send: written with ReminderScheduled in one transaction; the mailer claims,
    # sends and records the outcome. 'sending' that outlives its lease is an unknown outcome.
    op.execute(f"""
        CREATE TABLE {s}.outbox_messages (
            tenant_id   text NOT NULL,
            message_id  uuid NOT NULL,
            customer_id text NOT NULL,
            channel     text NOT NULL,
            status      text NOT NULL,  -- pending | sending | sent | failed | cancelled | task
            content     jsonb NOT NULL,
            attempts    integer NOT NULL DEFAULT 0,
            not_before  timestamptz NOT NULL DEFAULT now(),
            lease_until timestamptz,
            last_error  text,
            created_at  timestamptz NOT NULL DEFAULT now(),
            sent_at     timestamptz,
            PRIMARY KEY (tenant_id, message_id)
        )""")
    op.execute(
        f"CREATE INDEX outbox_messages_due ON {s}.outbox_messages (not_before) WHERE status = 'pending'"
    )
    op.execute(
        f"CREATE INDEX outbox_messages_sending ON {s}.outbox_messages (lease_until) WHERE status = 'sending'"
    )
    op.execute(f"""
        CREATE TABLE {s}.approvals (
            tenant_id   text NOT NULL,
            customer_id text NOT NULL,
            invoice_id  uuid NOT NULL,
            step_id     text NOT NULL,
            status      text NOT NULL DEFAULT 'pending',  -- pending | approved | rejected
            decided_by  text,
            created_at  timestamptz NOT NULL DEFAULT now(),
            decided_at  timestamptz,
            PRIMARY KEY (tenant_id, invoice_id, step_id)
        )""")
    op.execute(f"""
        CREATE TABLE {s}.escalations (
            tenant_id    text NOT NULL,
            event_id     uuid NOT NULL,
            customer_id  text NOT NULL,
            invoice_ids  uuid[] NOT NULL,
            amount_minor bigint,
            currency     char(3),
            escalated_on date NOT NULL,
            reason       text NOT NULL,
            PRIMARY KEY (tenant_id, event_id)
        )""")


def downgrade() -> None:
    s = current_schema()
    for table in (
        "escalations",
        "approvals",
        "outbox_messages",
        "cases",
        "policies",
        "customers",
        "invoices",
    ):
        op.execute(f"DROP TABLE IF EXISTS {s}.{table}")
