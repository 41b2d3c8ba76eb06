-- A row refused because its object is being removed (migration 0008) is refused
-- as data (SQLSTATE 23P01, an integrity error) rather than as an unavailable
-- database: a batch of accepts then records its other messages one by one, and
-- only the message that reused the object gets its 451.
CREATE OR REPLACE FUNCTION object_key_in_use(key text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(key, 0));
    IF EXISTS (SELECT 1 FROM object_removal r
               WHERE r.object_key = key AND r.refuse_until > clock_timestamp()) THEN
        RAISE EXCEPTION 'object % is being removed; retry later', key
            USING ERRCODE = 'exclusion_violation';
    END IF;
END
$$;
