"""ClickHouse access: the client factory (chDB or a server) and schema migrations."""
