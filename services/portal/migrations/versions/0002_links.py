"""Links issued, revocations (one link, or all of a customer's links before an instant), and
checkouts handed to the payment gateway.

Revision ID: portal_0002
Revises: portal_0001
"""

from alembic import op

from shared.migrations import current_schema

revision = "portal_0002"
down_revision = "portal_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = current_schema()
    op.execute(
        f"""CREATE TABLE {s}.links (
            tenant_id text NOT NULL,
            link_id uuid NOT NULL,
            customer_id text NOT NULL,
            issued_at timestamptz NOT NULL,
            expires_at timestamptz NOT NULL,
            issued_by text NOT NULL,
            PRIMARY KEY (tenant_id, link_id))"""
    )
    op.execute(f"CREATE INDEX links_by_customer ON {s}.links (tenant_id, customer_id, issued_at)")
    # Any signed link can be revoked by its id, also one the dunning mailer issued.
    op.execute(
        f"""CREATE TABLE {s}.revoked_links (
            tenant_id text NOT NULL,
            link_id uuid NOT NULL,
            customer_id text NOT NULL,
            revoked_at timestamptz NOT NULL,
            reason text NOT NULL,
            PRIMARY KEY (tenant_id, link_id))"""
    )
    op.execute(
        f"""CREATE TABLE {s}.customer_revocations (
            tenant_id text NOT NULL,
            customer_id text NOT NULL,
            revoked_before timestamptz NOT NULL,
            PRIMARY KEY (tenant_id, customer_id))"""
    )
    op.execute(
        f"""CREATE TABLE {s}.checkouts (
            tenant_id text NOT NULL,
            checkout_id uuid NOT NULL,
            customer_id text NOT NULL,
            link_id uuid NOT NULL,
            invoice_ids uuid[] NOT NULL,
            amount_minor bigint NOT NULL CHECK (amount_minor > 0),
            currency char(3) NOT NULL,
            session_id text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, checkout_id))"""
    )


def downgrade() -> None:
    s = current_schema()
    for table in ("checkouts", "customer_revocations", "revoked_links", "links"):
        op.execute(f"DROP TABLE IF EXISTS {s}.{table}")
