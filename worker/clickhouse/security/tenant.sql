-- An analyst role that sees one tenant's rows only. Render with
-- `worker db grants-sql --tenant NAME` (repeatable), which also renders roles.sql.
-- {tenant} is the tenant as stored; {tenant_name} its form usable in role names.
-- Give a user both worker_analyst (SELECT, read-only profile) and this role.
CREATE ROLE IF NOT EXISTS worker_analyst_tenant_{tenant_name};
CREATE ROW POLICY IF NOT EXISTS tenant_{tenant_name} ON {database}.requests
    FOR SELECT USING tenant = '{tenant}' TO worker_analyst_tenant_{tenant_name};
CREATE ROW POLICY IF NOT EXISTS tenant_{tenant_name} ON {database}.dead_letters
    FOR SELECT USING tenant = '{tenant}' TO worker_analyst_tenant_{tenant_name};
CREATE ROW POLICY IF NOT EXISTS tenant_{tenant_name} ON {database}.usage_per_minute
    FOR SELECT USING tenant = '{tenant}' TO worker_analyst_tenant_{tenant_name};
CREATE ROW POLICY IF NOT EXISTS tenant_{tenant_name} ON {database}.errors_per_minute
    FOR SELECT USING tenant = '{tenant}' TO worker_analyst_tenant_{tenant_name};
-- For example:
--   CREATE USER IF NOT EXISTS ana_{tenant_name} IDENTIFIED WITH sha256_password BY '...'
--       DEFAULT ROLE worker_analyst, worker_analyst_tenant_{tenant_name};
--   GRANT worker_analyst, worker_analyst_tenant_{tenant_name} TO ana_{tenant_name};
