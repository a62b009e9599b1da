-- Support looks an account up by an address as it reads it off a ticket:
-- other case, stray spaces. Without this index that look-up reads the whole
-- users table (484 ms at 2.2M users); with it, a few index entries.
create index users_email_folded_idx on users (lower(btrim(email)));
