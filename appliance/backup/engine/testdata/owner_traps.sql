-- What the owner of an office database can do to the unit's superuser sessions, one statement between
-- "-- next" lines, run as the owner in its database. Read by the backup tests and the QEMU backup test.
ALTER DATABASE practice SET search_path = public, pg_catalog
-- next
CREATE FUNCTION public.pg_export_snapshot() RETURNS text LANGUAGE plpgsql AS $$
	BEGIN RAISE EXCEPTION 'owner code ran as %', current_user; END $$
-- next
CREATE FUNCTION public.trap(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
	BEGIN
		IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
			RAISE EXCEPTION 'owner code ran as superuser %', current_user;
		END IF;
		RETURN $1;
	END $$
-- next
CREATE INDEX matters_trap ON matters (public.trap(id))
-- next
ALTER ROLE practice_app IN DATABASE postgres SET search_path = E'x\nALTER USER practice_app SUPERUSER;\n--'
