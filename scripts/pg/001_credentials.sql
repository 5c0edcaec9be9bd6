-- 001_credentials.sql — ringmq's credential store, schema version 1.
--
-- Idempotent: applying it again changes nothing (scripts/pg/README.md says how migrations run). One transaction,
-- serialized against concurrent appliers by an advisory lock, so two hosts applying it at once cannot race
-- between "IF NOT EXISTS" and "CREATE".
--
-- A row is one credential. Which column finds it is the broker's `pg_match`: username, client_id, both
-- (client_id and username) or cert_cn. The unique indexes make every mode find at most one row:
--   client_id  unique (the client ID is the broker's session key: two credentials sharing one would take over
--              each other's sessions), so (client_id, username) is unique too;
--   cert_cn    unique;
--   username   unique among rows without a client ID. Several rows may share a user name when each names its
--              client ID (pg_match = both: one user, several devices); with pg_match = username such a user name
--              is ambiguous and the broker refuses it (logged) rather than pick one.
-- The broker's role needs SELECT on ringmq_credentials only; ringmqctl's role INSERT, UPDATE, DELETE and USAGE
-- on the id sequence.
BEGIN;

DO $$ BEGIN PERFORM pg_advisory_xact_lock(hashtext('ringmq schema')); END $$;

CREATE TABLE IF NOT EXISTS ringmq_schema_version (
	version integer PRIMARY KEY,
	description text NOT NULL,
	applied timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS ringmq_credentials (
	id bigserial PRIMARY KEY,
	client_id text,
	username text,
	cert_cn text,
	password_hash text,                      -- bcrypt ($2a$/$2b$) or PBKDF2-SHA512; NULL: no password
	pub_rules text[] NOT NULL DEFAULT '{}',  -- topic filters the client may publish to (%c, %u substituted)
	sub_rules text[] NOT NULL DEFAULT '{}',  -- topic filters the client may subscribe within
	created timestamptz NOT NULL DEFAULT now(),
	updated timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT ringmq_credentials_has_key
		CHECK (client_id IS NOT NULL OR username IS NOT NULL OR cert_cn IS NOT NULL),
	CONSTRAINT ringmq_credentials_client_id_nonempty CHECK (client_id <> ''),
	CONSTRAINT ringmq_credentials_cert_cn_nonempty CHECK (cert_cn <> ''),
	CONSTRAINT ringmq_credentials_rules_flat
		CHECK (coalesce(array_ndims(pub_rules), 1) = 1 AND coalesce(array_ndims(sub_rules), 1) = 1),
	CONSTRAINT ringmq_credentials_rules_no_null
		CHECK (array_position(pub_rules, NULL) IS NULL AND array_position(sub_rules, NULL) IS NULL)
);

CREATE UNIQUE INDEX IF NOT EXISTS ringmq_credentials_client_id ON ringmq_credentials (client_id);
CREATE UNIQUE INDEX IF NOT EXISTS ringmq_credentials_cert_cn ON ringmq_credentials (cert_cn);
CREATE UNIQUE INDEX IF NOT EXISTS ringmq_credentials_username_only ON ringmq_credentials (username)
	WHERE client_id IS NULL;
CREATE INDEX IF NOT EXISTS ringmq_credentials_username ON ringmq_credentials (username);

CREATE OR REPLACE FUNCTION ringmq_credentials_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.updated := now();
	RETURN NEW;
END
$$;

-- Every change is announced on channel ringmq_credentials with the row id (both ids if an UPDATE changes
-- it); TRUNCATE announces '*'. Brokers drop their cached copy and disconnect the clients that authenticated
-- with it. Notifications are sent at commit, so a rolled-back change announces nothing.
CREATE OR REPLACE FUNCTION ringmq_credentials_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		PERFORM pg_notify('ringmq_credentials', '*');
	ELSIF TG_OP = 'INSERT' THEN
		PERFORM pg_notify('ringmq_credentials', NEW.id::text);
	ELSIF TG_OP = 'DELETE' THEN
		PERFORM pg_notify('ringmq_credentials', OLD.id::text);
	ELSE
		PERFORM pg_notify('ringmq_credentials', OLD.id::text);
		IF NEW.id <> OLD.id THEN
			PERFORM pg_notify('ringmq_credentials', NEW.id::text);
		END IF;
	END IF;
	RETURN NULL;
END
$$;

-- CREATE OR REPLACE TRIGGER needs PostgreSQL 14; drop and create keeps 11+ working, inside the transaction.
DROP TRIGGER IF EXISTS ringmq_credentials_touch ON ringmq_credentials;
CREATE TRIGGER ringmq_credentials_touch BEFORE UPDATE ON ringmq_credentials
	FOR EACH ROW EXECUTE FUNCTION ringmq_credentials_touch();
DROP TRIGGER IF EXISTS ringmq_credentials_notify ON ringmq_credentials;
CREATE TRIGGER ringmq_credentials_notify AFTER INSERT OR UPDATE OR DELETE ON ringmq_credentials
	FOR EACH ROW EXECUTE FUNCTION ringmq_credentials_notify();
DROP TRIGGER IF EXISTS ringmq_credentials_notify_truncate ON ringmq_credentials;
CREATE TRIGGER ringmq_credentials_notify_truncate AFTER TRUNCATE ON ringmq_credentials
	FOR EACH STATEMENT EXECUTE FUNCTION ringmq_credentials_notify();

INSERT INTO ringmq_schema_version (version, description) VALUES (1, 'credentials, NOTIFY on change')
	ON CONFLICT (version) DO NOTHING;

COMMIT;
