"""Run marks: the scheduler runs a customer at most once a day while nothing its run reads has
changed. `ran_on` is the day of the last run, `ran_inputs` fingerprints the facts it read besides
the case (invoices, the customer's row, the tenant's policies, approved steps) and
`ran_case_version` is the case's version after it.

Revision ID: dunning_0005
Revises: dunning_0004
"""

from alembic import op

from shared.migrations import current_schema

revision = "dunning_0005"
down_revision = "dunning_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(f"""
        ALTER TABLE {current_schema()}.customers
            ADD COLUMN ran_on           date,
            ADD COLUMN ran_inputs       text,
            ADD COLUMN ran_case_version integer""")


def downgrade() -> None:
    op.execute(
        f"""ALTER TABLE {current_schema()}.customers
            DROP COLUMN ran_on, DROP COLUMN ran_inputs, DROP COLUMN ran_case_version"""
    )
