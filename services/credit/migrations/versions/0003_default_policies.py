"""Default credit policies per tenant and per customer segment (read model of their streams).

Revision ID: credit_0003
Revises: credit_0002
"""

from alembic import op

from shared.migrations import current_schema

revision = "credit_0003"
down_revision = "credit_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = current_schema()
    op.execute(f"""
        CREATE TABLE {s}.default_policies (
            tenant_id  text NOT NULL,
            scope      text NOT NULL,  -- 'tenant' or 'segment:<name>'
            version    integer NOT NULL,
            document   jsonb NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, scope)
        )""")


def downgrade() -> None:
    op.execute(f"DROP TABLE IF EXISTS {current_schema()}.default_policies")
