-- Least-privilege access to the worker's database on a ClickHouse server.
-- Render with `worker db grants-sql` (fills in {database}), review, then run as
-- an administrator. Users and passwords are yours to create: see the end of
-- this file and docs/analytics.md.
--
-- worker_writer: what `worker run` needs and nothing more. It inserts rows,
-- reads only the three columns of the high-water query and the five of the
-- cache's hot-key query (docs/cache.md, warming), and reads the list of
-- applied migrations to check the schema (run it with
-- CLICKHOUSE_MIGRATE_ON_START=false; `worker db migrate` runs as an
-- administrator). The materialized views write the usage tables as their
-- definer (the default SQL SECURITY of views since ClickHouse 24.2), so the
-- writer needs no grant on them.
CREATE ROLE IF NOT EXISTS worker_writer;
GRANT INSERT ON {database}.requests TO worker_writer;
GRANT INSERT ON {database}.dead_letters TO worker_writer;
GRANT SELECT(source_topic, source_partition, source_offset) ON {database}.requests TO worker_writer;
GRANT SELECT(tenant, operation, received_at, cache_key, cache_params) ON {database}.requests TO worker_writer;
GRANT SELECT ON {database}.schema_migrations TO worker_writer;

CREATE SETTINGS PROFILE IF NOT EXISTS worker_writer SETTINGS
    async_insert = 0,
    insert_deduplicate = 1,
    max_execution_time = 60
    TO worker_writer;

-- worker_analyst: reads every table of the database, writes nothing.
-- readonly = 2 lets clients send their usual settings; MIN 1 keeps any of them
-- from lifting it to 0 (read-write), while `worker db query` may still ask for 1.
CREATE ROLE IF NOT EXISTS worker_analyst;
GRANT SELECT ON {database}.* TO worker_analyst;

CREATE SETTINGS PROFILE IF NOT EXISTS worker_analyst SETTINGS
    readonly = 2 MIN 1 MAX 2,
    max_execution_time = 60,
    max_memory_usage = 4000000000,
    max_result_rows = 1000000,
    result_overflow_mode = 'break'
    TO worker_analyst;

-- Row policies. Once a table has any row policy, a user who matches none of
-- them sees no rows, so analysts of every tenant get an explicit policy, and
-- tenant-bound analysts get theirs from tenant.sql.
CREATE ROLE IF NOT EXISTS worker_analyst_all_tenants;
CREATE ROW POLICY IF NOT EXISTS all_tenants ON {database}.requests
    FOR SELECT USING 1 TO worker_analyst_all_tenants;
CREATE ROW POLICY IF NOT EXISTS all_tenants ON {database}.dead_letters
    FOR SELECT USING 1 TO worker_analyst_all_tenants;
CREATE ROW POLICY IF NOT EXISTS all_tenants ON {database}.usage_per_minute
    FOR SELECT USING 1 TO worker_analyst_all_tenants;
CREATE ROW POLICY IF NOT EXISTS all_tenants ON {database}.errors_per_minute
    FOR SELECT USING 1 TO worker_analyst_all_tenants;
-- The writer's high-water read must see every row of requests.
CREATE ROW POLICY IF NOT EXISTS writer_positions ON {database}.requests
    FOR SELECT USING 1 TO worker_writer;

-- Users (replace the passwords; prefer certificates or an external directory):
--   CREATE USER IF NOT EXISTS worker IDENTIFIED WITH sha256_password BY '...'
--       DEFAULT ROLE worker_writer;
--   GRANT worker_writer TO worker;
--   CREATE USER IF NOT EXISTS ana IDENTIFIED WITH sha256_password BY '...'
--       DEFAULT ROLE worker_analyst, worker_analyst_all_tenants;
--   GRANT worker_analyst, worker_analyst_all_tenants TO ana;
