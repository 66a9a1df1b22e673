-- Roles and databases of Strata's native PostgreSQL. Run by stack.sh as the
-- superuser over the Unix socket after every start; idempotent.
--
-- Each service (auth, session, ledger) has a least-privilege login role of the
-- same name that owns its database and its *_test database (for integration
-- tests). CONNECT is revoked from PUBLIC everywhere, so a role can open only
-- the databases it owns. Roles have no password: they log in with a client
-- certificate whose CN is the role name (pg_hba.conf, method cert).
\set ON_ERROR_STOP on

DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['auth', 'session', 'ledger'] LOOP
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I', r);
    END IF;
    EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD NULL', r);
  END LOOP;
END
$$;

-- The replication role of the HA topology's standby: it may stream WAL
-- (pg_hba.conf admits it to replication connections only) and nothing
-- else; it logs in with the client certificate CN=replicator.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'replicator') THEN
    CREATE ROLE replicator;
  END IF;
  ALTER ROLE replicator LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD NULL;
END
$$;

-- CREATE DATABASE cannot run inside DO; \gexec runs each generated statement.
SELECT format('CREATE DATABASE %I OWNER %I', d.name, d.owner)
FROM (VALUES ('auth', 'auth'), ('session', 'session'), ('ledger', 'ledger'),
             ('auth_test', 'auth'), ('session_test', 'session'), ('ledger_test', 'ledger')) AS d(name, owner)
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = d.name)
\gexec

SELECT format('ALTER DATABASE %I OWNER TO %I', d.name, d.owner),
       format('REVOKE ALL ON DATABASE %I FROM PUBLIC', d.name),
       format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', d.name, d.owner)
FROM (VALUES ('auth', 'auth'), ('session', 'session'), ('ledger', 'ledger'),
             ('auth_test', 'auth'), ('session_test', 'session'), ('ledger_test', 'ledger')) AS d(name, owner)
\gexec

-- The maintenance databases are for the superuser only.
REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC;
