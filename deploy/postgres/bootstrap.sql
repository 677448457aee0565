-- deploy/postgres/bootstrap.sql - roles, schemas and privileges for Ledgerline.
--
-- Run as a superuser, connected to the ledgerline database:
--     psql -X -v ON_ERROR_STOP=1 -d ledgerline -f deploy/postgres/bootstrap.sql
-- deploy/postgres/start.sh applies it on every start; the postgres Docker image runs it once from
-- /docker-entrypoint-initdb.d/. It is idempotent: running it again changes nothing that is
-- already in the desired state.
--
-- Layout:
--   <name>_svc   login role per service (dev password = role name), owns schema <name>,
--                search_path = <name>, no privileges on the other services' schemas.
--   bi_reader    read-only login role: USAGE on schema reporting and SELECT on every table in it,
--                including tables reporting_svc creates later; nothing on the other schemas.
--
-- Passwords are set when a role is created (or has no password at all); an existing password is
-- never overwritten, so a rotated password survives re-runs.

\set ON_ERROR_STOP on

DO $$
BEGIN
  IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    RAISE EXCEPTION 'bootstrap.sql must be run by a superuser (current_user = %)', current_user;
  END IF;
END
$$;

-- Nobody but the owner/superusers may create objects in schema public.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

DO $$
DECLARE
  services CONSTANT text[] := ARRAY['invoice', 'payments', 'credit', 'dunning', 'reporting', 'portal'];
  svc   text;
  other text;
  role  text;
BEGIN
  FOREACH svc IN ARRAY services LOOP
    role := svc || '_svc';

    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role) THEN
      EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', role, role);
    ELSE
      EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', role);
      IF (SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = role) THEN
        EXECUTE format('ALTER ROLE %I PASSWORD %L', role, role);
      END IF;
    END IF;

    IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = svc) THEN
      EXECUTE format('CREATE SCHEMA %I AUTHORIZATION %I', svc, role);
    ELSIF (SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = svc) IS DISTINCT FROM quote_ident(role) THEN
      EXECUTE format('ALTER SCHEMA %I OWNER TO %I', svc, role);
    END IF;
    EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', svc);

    IF NOT EXISTS (
      SELECT 1 FROM pg_db_role_setting s
      WHERE s.setrole = (SELECT oid FROM pg_roles WHERE rolname = role)
        AND s.setdatabase = 0
        AND format('search_path=%I', svc) = ANY (s.setconfig)
    ) THEN
      EXECUTE format('ALTER ROLE %I SET search_path = %I', role, svc);
    END IF;
  END LOOP;

  -- Service isolation: no service role keeps any privilege on another service's schema.
  FOREACH svc IN ARRAY services LOOP
    FOREACH other IN ARRAY services LOOP
      CONTINUE WHEN other = svc;
      EXECUTE format('REVOKE ALL ON SCHEMA %I FROM %I', other, svc || '_svc');
    END LOOP;
  END LOOP;

  -- Read-only BI role.
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bi_reader') THEN
    CREATE ROLE bi_reader LOGIN PASSWORD 'bi_reader';
  ELSE
    ALTER ROLE bi_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
    IF (SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'bi_reader') THEN
      ALTER ROLE bi_reader PASSWORD 'bi_reader';
    END IF;
  END IF;
  IF NOT EXISTS (
    SELECT 1 FROM pg_db_role_setting s
    WHERE s.setrole = 'bi_reader'::regrole AND s.setdatabase = 0
      AND 'default_transaction_read_only=on' = ANY (s.setconfig)
  ) THEN
    ALTER ROLE bi_reader SET default_transaction_read_only = on;
  END IF;
  IF NOT EXISTS (
    SELECT 1 FROM pg_db_role_setting s
    WHERE s.setrole = 'bi_reader'::regrole AND s.setdatabase = 0
      AND 'search_path=reporting' = ANY (s.setconfig)
  ) THEN
    ALTER ROLE bi_reader SET search_path = reporting;
  END IF;
  FOREACH svc IN ARRAY services LOOP
    CONTINUE WHEN svc = 'reporting';
    EXECUTE format('REVOKE ALL ON SCHEMA %I FROM bi_reader', svc);
  END LOOP;
END
$$;

GRANT USAGE ON SCHEMA reporting TO bi_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO bi_reader;
-- Tables (and views) reporting_svc creates from now on are readable by bi_reader too.
ALTER DEFAULT PRIVILEGES FOR ROLE reporting_svc IN SCHEMA reporting GRANT SELECT ON TABLES TO bi_reader;
