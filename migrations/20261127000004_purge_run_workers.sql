-- Each batch worker of a purge run books its batches on a row of its own.
-- With one ledger row per run, every batch of every worker updated that same
-- row and held it until commit, so parallel workers queued behind each other
-- (measured: two workers no faster than one). `purge_runs.deleted` and
-- `batches` are the sums of these rows, written when the run ends (or is
-- found abandoned); while a run is in progress, its figures are here.
--
-- (The lease of a running run is set once when it claims the purge, to its
-- time budget plus a grace period; batches do not renew it. A batch books
-- only while its run is still `running`, holding the run's row `for share`
-- so it cannot be marked abandoned mid-batch.)

create table purge_run_workers (
    run_id bigint not null
        constraint purge_run_workers_run_id_fkey references purge_runs (id) on delete cascade,
    worker integer not null,
    deleted bigint not null default 0,
    batches integer not null default 0,
    constraint purge_run_workers_pkey primary key (run_id, worker)
);
