-- The cache key of each request (empty when its operation is not cached) and the
-- canonical params the key was derived from (empty when longer than 4 KiB): the
-- cache warms the most requested keys of the last hour from these.
ALTER TABLE {database}.requests ADD COLUMN IF NOT EXISTS cache_key String DEFAULT '';
ALTER TABLE {database}.requests ADD COLUMN IF NOT EXISTS cache_params String DEFAULT '' CODEC(ZSTD(3));
