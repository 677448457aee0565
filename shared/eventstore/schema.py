"""DDL of the kernel tables every service schema has; the services' first migration runs it.

- events: the append-only event store and, at the same time, the outbox. `transaction_id` (the
  writer's xid8) lets the relay publish without ever skipping an event whose transaction commits
  after later ones: it reads only below the oldest running transaction (see outbox.py).
- inbox: (consumer_group, event_id) written with a consumer's effects, so redelivery is a no-op.
- idempotency_keys: stored responses for Idempotency-Key replays.
- projection_checkpoints / relay_checkpoints: positions written in the same transaction as the
  work they describe.
"""

from __future__ import annotations

from shared.db import checked_schema


def kernel_ddl(schema: str) -> list[str]:
    s = checked_schema(schema)
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {s}.events (
            global_position bigint GENERATED ALWAYS AS IDENTITY,
            transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
            event_id        uuid        NOT NULL,
            stream_id       text        NOT NULL,
            stream_version  integer     NOT NULL CHECK (stream_version >= 1),
            event_type      text        NOT NULL,
            schema_version  integer     NOT NULL CHECK (schema_version >= 1),
            tenant_id       text        NOT NULL,
            customer_id     text,
            occurred_at     timestamptz NOT NULL,
            recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
            correlation_id  uuid,
            causation_id    uuid,
            actor           text        NOT NULL,
            traceparent     text,
            payload         jsonb       NOT NULL,
            PRIMARY KEY (stream_id, stream_version),
            UNIQUE (event_id)
        )""",
        f"CREATE UNIQUE INDEX IF NOT EXISTS events_relay_order ON {s}.events (transaction_id, global_position)",
        f"CREATE INDEX IF NOT EXISTS events_tenant_customer ON {s}.events (tenant_id, customer_id, global_position)",
        f"CREATE INDEX IF NOT EXISTS events_correlation ON {s}.events (correlation_id) WHERE correlation_id IS NOT NULL",
        f"""
        CREATE OR REPLACE FUNCTION {s}.refuse_event_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'events are append-only: % refused on %.%', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
                USING ERRCODE = 'restrict_violation';
        END $$""",
        f"DROP TRIGGER IF EXISTS events_append_only ON {s}.events",
        f"""CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON {s}.events
            FOR EACH ROW EXECUTE FUNCTION {s}.refuse_event_change()""",
        f"DROP TRIGGER IF EXISTS events_no_truncate ON {s}.events",
        f"""CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON {s}.events
            FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_event_change()""",
        f"""
        CREATE TABLE IF NOT EXISTS {s}.relay_checkpoints (
            relay_name      text PRIMARY KEY,
            transaction_id  xid8   NOT NULL,
            global_position bigint NOT NULL,
            published_total bigint NOT NULL DEFAULT 0,
            updated_at      timestamptz NOT NULL DEFAULT now()
        )""",
        f"""
        CREATE TABLE IF NOT EXISTS {s}.inbox (
            consumer_group text NOT NULL,
            event_id       uuid NOT NULL,
            outcome        text NOT NULL DEFAULT 'processed' CHECK (outcome IN ('processed', 'dead_lettered')),
            topic          text NOT NULL,
            kafka_partition integer NOT NULL,
            kafka_offset   bigint NOT NULL,
            processed_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer_group, event_id)
        )""",
        f"""
        CREATE TABLE IF NOT EXISTS {s}.projection_checkpoints (
            projection     text    NOT NULL,
            topic          text    NOT NULL,
            kafka_partition integer NOT NULL,
            next_offset    bigint  NOT NULL,
            updated_at     timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (projection, topic, kafka_partition)
        )""",
        f"""
        CREATE TABLE IF NOT EXISTS {s}.idempotency_keys (
            tenant_id      text  NOT NULL,
            idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
            request_fingerprint text NOT NULL,
            status_code    integer,
            response_body  jsonb,
            created_at     timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, idempotency_key)
        )""",
        f"CREATE INDEX IF NOT EXISTS idempotency_keys_created ON {s}.idempotency_keys (created_at)",
    ]


def audit_ddl(schema: str) -> list[str]:
    """The audit kernel (added after the first release, so a migration of its own per service).

    - event_chain: a SHA-256 hash chain over the events in relay order, written by the chain
      sealer (shared/audit/chain.py); each link records the hash of the previous one, so a changed,
      deleted or slipped-in event breaks the chain that `ar audit verify` walks.
    - dead_letters: every message a consumer group gave up on, where its DLQ copy is, and what an
      operator did about it (re-driven, or discarded with a reason), by whom and when.
    - indexes that let `ar events trace` follow causation ids and find who consumed an event.
    - events_correlated: new events must name the request (or job run) that caused them; rows
      written before this constraint are not re-checked (NOT VALID).
    """
    s = checked_schema(schema)
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {s}.event_chain (
            seq             bigint      PRIMARY KEY CHECK (seq >= 1),
            event_id        uuid        NOT NULL UNIQUE,
            transaction_id  xid8        NOT NULL,
            global_position bigint      NOT NULL,
            prev_hash       bytea       NOT NULL CHECK (length(prev_hash) = 32),
            hash            bytea       NOT NULL CHECK (length(hash) = 32),
            sealed_at       timestamptz NOT NULL DEFAULT clock_timestamp()
        )""",
        f"DROP TRIGGER IF EXISTS event_chain_append_only ON {s}.event_chain",
        f"""CREATE TRIGGER event_chain_append_only BEFORE UPDATE OR DELETE ON {s}.event_chain
            FOR EACH ROW EXECUTE FUNCTION {s}.refuse_event_change()""",
        f"DROP TRIGGER IF EXISTS event_chain_no_truncate ON {s}.event_chain",
        f"""CREATE TRIGGER event_chain_no_truncate BEFORE TRUNCATE ON {s}.event_chain
            FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_event_change()""",
        f"""
        CREATE TABLE IF NOT EXISTS {s}.dead_letters (
            id              bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
            consumer_group  text        NOT NULL,
            topic           text        NOT NULL,
            kafka_partition integer     NOT NULL,
            kafka_offset    bigint      NOT NULL,
            event_id        uuid,
            event_type      text,
            tenant_id       text,
            dlq_topic       text        NOT NULL,
            dlq_partition   integer     NOT NULL,
            dlq_offset      bigint      NOT NULL,
            error_type      text        NOT NULL,
            error_message   text        NOT NULL,
            attempts        integer     NOT NULL,
            failed_at       timestamptz NOT NULL DEFAULT now(),
            status          text        NOT NULL DEFAULT 'open'
                                        CHECK (status IN ('open', 'redriven', 'discarded')),
            redrive_attempts integer    NOT NULL DEFAULT 0,
            last_redrive_error text,
            resolved_at     timestamptz,
            resolved_by     text,
            resolution      text,
            PRIMARY KEY (consumer_group, topic, kafka_partition, kafka_offset),
            CHECK ((status = 'open') = (resolved_at IS NULL))
        )""",
        f"CREATE INDEX IF NOT EXISTS events_causation ON {s}.events (causation_id) WHERE causation_id IS NOT NULL",
        f"CREATE INDEX IF NOT EXISTS inbox_event ON {s}.inbox (event_id)",
        f"CREATE INDEX IF NOT EXISTS dead_letters_event ON {s}.dead_letters (event_id) WHERE event_id IS NOT NULL",
        f"CREATE INDEX IF NOT EXISTS dead_letters_open ON {s}.dead_letters (consumer_group) WHERE status = 'open'",
        f"""DO $$ BEGIN
            ALTER TABLE {s}.events ADD CONSTRAINT events_correlated
                CHECK (correlation_id IS NOT NULL) NOT VALID;
        EXCEPTION WHEN duplicate_object THEN NULL; END $$""",
    ]


def drop_audit_ddl(schema: str) -> list[str]:
    s = checked_schema(schema)
    return [
        f"ALTER TABLE {s}.events DROP CONSTRAINT IF EXISTS events_correlated",
        f"DROP INDEX IF EXISTS {s}.events_causation",
        f"DROP INDEX IF EXISTS {s}.inbox_event",
        f"DROP TABLE IF EXISTS {s}.dead_letters",
        f"DROP TABLE IF EXISTS {s}.event_chain",
    ]


def drop_kernel_ddl(schema: str) -> list[str]:
    s = checked_schema(schema)
    return [
        f"DROP TABLE IF EXISTS {s}.{table} CASCADE"
        for table in (
            "idempotency_keys",
            "projection_checkpoints",
            "inbox",
            "relay_checkpoints",
            "events",
        )
    ] + [f"DROP FUNCTION IF EXISTS {s}.refuse_event_change()"]
