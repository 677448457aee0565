"""The general-ledger journal (issue 10): balanced entries posted from financial events, the
tenant's functional currency, export cursors and the connector sync log (docs/accounting.md).

The journal is written by its own consumer group (``reporting.journal``), not by the projector:
its tables are not projection tables, so ``ar projections rebuild`` neither replaces nor
touches them (a journal rebuild is its own, later, task).

Revision ID: reporting_0005
Revises: reporting_0004
"""

from alembic import op

from shared.migrations import current_schema

revision = "reporting_0005"
down_revision = "reporting_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = current_schema()
    op.execute(f"""
        CREATE TABLE {s}.ledger_settings (
            tenant_id           text PRIMARY KEY,
            functional_currency char(3) NOT NULL,
            chosen_by           text NOT NULL,  -- 'default' (frozen on first posting) or 'admin'
            updated_at          timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute(f"""
        CREATE TABLE {s}.journal_entries (
            tenant_id           text NOT NULL,
            entry_id            text NOT NULL,  -- '<source event_id>:<kind>'
            position            bigint GENERATED ALWAYS AS IDENTITY,  -- the export cursor
            kind                text NOT NULL,
            entry_date          date NOT NULL,
            event_id            uuid NOT NULL,
            event_type          text NOT NULL,
            customer_id         text,
            invoice_id          uuid,
            payment_id          uuid,
            allocation_id       uuid,
            document_number     text,
            narration           text NOT NULL,
            functional_currency char(3) NOT NULL,
            rate                numeric(24, 10) NOT NULL,
            recorded_at         timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, entry_id)
        )""")
    op.execute(
        f"CREATE UNIQUE INDEX reporting_journal_position ON {s}.journal_entries "
        "(tenant_id, position)"
    )
    op.execute(f"CREATE INDEX reporting_journal_event ON {s}.journal_entries (tenant_id, event_id)")
    op.execute(
        f"CREATE INDEX reporting_journal_invoice ON {s}.journal_entries (tenant_id, invoice_id) "
        "WHERE invoice_id IS NOT NULL"
    )
    op.execute(
        f"CREATE INDEX reporting_journal_payment ON {s}.journal_entries (tenant_id, payment_id) "
        "WHERE payment_id IS NOT NULL"
    )
    op.execute(f"""
        CREATE TABLE {s}.journal_lines (
            tenant_id           text NOT NULL,
            entry_id            text NOT NULL,
            line_no             integer NOT NULL,
            role                text NOT NULL,
            account             text NOT NULL,
            currency            char(3) NOT NULL,
            amount_minor        bigint NOT NULL,      -- signed: debit > 0, credit < 0
            functional_currency char(3) NOT NULL,
            functional_minor    bigint NOT NULL,      -- signed, in the functional currency
            PRIMARY KEY (tenant_id, entry_id, line_no),
            FOREIGN KEY (tenant_id, entry_id)
                REFERENCES {s}.journal_entries (tenant_id, entry_id) ON DELETE CASCADE
        )""")
    op.execute(
        f"CREATE INDEX reporting_journal_lines_account ON {s}.journal_lines "
        "(tenant_id, account, currency)"
    )
    op.execute(f"""
        CREATE TABLE {s}.ledger_cursors (
            tenant_id     text NOT NULL,
            target        text NOT NULL,   -- 'export:beancount', 'beancount-file:/path', ...
            position      bigint NOT NULL DEFAULT 0,  -- last journal position delivered
            updated_at    timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, target)
        )""")
    op.execute(f"""
        CREATE TABLE {s}.ledger_sync_log (
            sync_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id     text NOT NULL,
            target        text NOT NULL,
            from_position bigint NOT NULL,
            to_position   bigint,          -- the last position accepted (NULL: none)
            entries       integer NOT NULL DEFAULT 0,
            status        text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
            attempts      integer NOT NULL DEFAULT 0,
            error         text,
            started_at    timestamptz NOT NULL DEFAULT now(),
            finished_at   timestamptz
        )""")
    op.execute(
        f"CREATE INDEX reporting_ledger_sync_log_target ON {s}.ledger_sync_log "
        "(tenant_id, target, sync_id)"
    )


def downgrade() -> None:
    s = current_schema()
    op.execute(
        f"DROP TABLE {s}.ledger_sync_log, {s}.ledger_cursors, {s}.journal_lines, "
        f"{s}.journal_entries, {s}.ledger_settings"
    )
