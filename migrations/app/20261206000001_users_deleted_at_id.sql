-- The purge and the sweeps page through soft-deleted accounts by the key
-- (deleted_at, id): an index on both lets a page start exactly after the
-- last one even when thousands of accounts share one deleted-at (a mass
-- ban in one UPDATE), where an index on deleted_at alone makes every page
-- walk the tie from its first row. It serves every look-up by deleted-at
-- the old index served, so that one goes.
create index users_deleted_at_id_idx on users (deleted_at, id) where deleted_at is not null;
drop index users_deleted_at_idx;
