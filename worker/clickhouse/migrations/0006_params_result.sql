-- What each request asked and what it was answered, as JSON text, for analysts.
-- Fields an operation marks sensitive are left out or stored encrypted
-- ("enc:v1:<base64>", opened by `worker db decrypt`), as the operation declares;
-- empty for requests that did not validate, for errors (result) and for JSON
-- longer than 64 KiB.
ALTER TABLE {database}.requests ADD COLUMN IF NOT EXISTS params String DEFAULT '' CODEC(ZSTD(3));
ALTER TABLE {database}.requests ADD COLUMN IF NOT EXISTS result String DEFAULT '' CODEC(ZSTD(3));
