"""Portal links and statements: each e-mail records the portal link it carries (so ops can
revoke it by id); customers may opt in to statements; a statement is queued once per period.

Revision ID: dunning_0004
Revises: dunning_0003
"""

from alembic import op

from shared.migrations import current_schema

revision = "dunning_0004"
down_revision = "dunning_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = current_schema()
    op.execute(f"""
        ALTER TABLE {s}.outbox_messages
            ADD COLUMN kind text NOT NULL DEFAULT 'reminder',  -- reminder | statement
            -- statements: 'statement:<frequency>:<start>:<end>'; one message per period
            ADD COLUMN period_key text,
            -- the portal link in the e-mail (its token is never stored), issued at claim time
            ADD COLUMN portal_link_id uuid,
            ADD COLUMN portal_link_expires_at timestamptz""")
    op.execute(
        f"""CREATE UNIQUE INDEX outbox_messages_period ON {s}.outbox_messages
            (tenant_id, customer_id, period_key) WHERE period_key IS NOT NULL"""
    )
    op.execute(
        f"""CREATE INDEX outbox_messages_portal_link ON {s}.outbox_messages
            (tenant_id, portal_link_id) WHERE portal_link_id IS NOT NULL"""
    )
    op.execute(f"""
        ALTER TABLE {s}.customers
            ADD COLUMN statement_frequency text NOT NULL DEFAULT 'none'
            CONSTRAINT customers_statement_frequency
            CHECK (statement_frequency IN ('none', 'weekly', 'monthly'))""")
    op.execute(
        f"""CREATE INDEX customers_statements ON {s}.customers (statement_frequency)
            WHERE statement_frequency <> 'none'"""
    )


def downgrade() -> None:
    s = current_schema()
    op.execute(f"DROP INDEX IF EXISTS {s}.customers_statements")
    op.execute(f"ALTER TABLE {s}.customers DROP COLUMN IF EXISTS statement_frequency")
    op.execute(f"DROP INDEX IF EXISTS {s}.outbox_messages_portal_link")
    op.execute(f"DROP INDEX IF EXISTS {s}.outbox_messages_period")
    op.execute(f"""
        ALTER TABLE {s}.outbox_messages
            DROP COLUMN IF EXISTS portal_link_expires_at,
            DROP COLUMN IF EXISTS portal_link_id,
            DROP COLUMN IF EXISTS period_key,
            DROP COLUMN IF EXISTS kind""")
