-- strata_ha.replication_lag(): how far each streaming standby is behind,
-- for libs/pgstore's metrics collector. Run by stack.sh as the superuser
-- in every service database after each start of the primary; idempotent.
-- psql variable :owner is the database's service role.
--
-- pg_stat_replication shows LSNs only to superusers and pg_read_all_stats,
-- which would also let a service read every other session's query text.
-- This SECURITY DEFINER function exposes the lag columns and nothing else.
\set ON_ERROR_STOP on

CREATE SCHEMA IF NOT EXISTS strata_ha AUTHORIZATION postgres;
REVOKE ALL ON SCHEMA strata_ha FROM PUBLIC;
GRANT USAGE ON SCHEMA strata_ha TO :"owner";

CREATE OR REPLACE FUNCTION strata_ha.replication_lag()
RETURNS TABLE (application_name text, state text, lag_bytes numeric, replay_lag_seconds double precision)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT r.application_name::text, r.state::text,
         CASE WHEN pg_is_in_recovery() THEN NULL
              ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn) END,
         -- replay_lag is NULL once an idle standby has caught up.
         COALESCE(EXTRACT(epoch FROM r.replay_lag), 0)::double precision
  FROM pg_stat_replication r
$$;
REVOKE ALL ON FUNCTION strata_ha.replication_lag() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION strata_ha.replication_lag() TO :"owner";
