//! The catalog's schema as a list of migrations; the database's `user_version` is the number of
//! migrations applied. Append, never edit: a released migration is history.

pub const MIGRATIONS: &[&str] = &[
    // 1: snapshots with their state history, intents, and the command event log.
    "CREATE TABLE snapshots (
        id INTEGER PRIMARY KEY,
        lv_uuid TEXT UNIQUE,
        vg TEXT NOT NULL,
        name TEXT NOT NULL,
        origin TEXT NOT NULL,
        policy TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        thin INTEGER NOT NULL,
        size INTEGER NOT NULL,
        state TEXT NOT NULL,
        reason TEXT,
        pinned INTEGER NOT NULL DEFAULT 0,
        note TEXT,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX snapshots_group ON snapshots (policy, vg, origin);
    CREATE INDEX snapshots_state ON snapshots (state);
    CREATE TABLE snapshot_states (
        id INTEGER PRIMARY KEY,
        snapshot_id INTEGER NOT NULL REFERENCES snapshots (id),
        at INTEGER NOT NULL,
        state TEXT NOT NULL,
        detail TEXT
    );
    CREATE TABLE intents (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        action TEXT NOT NULL,
        snapshot_id INTEGER REFERENCES snapshots (id),
        resolved_at INTEGER,
        outcome TEXT
    );
    CREATE INDEX intents_open ON intents (resolved_at);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        argv TEXT NOT NULL,
        status INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        stderr TEXT NOT NULL
    );",
    // 2: the outcome of each run and of each group in it, for status, check and metrics.
    "CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        ok INTEGER NOT NULL
    );
    CREATE TABLE group_results (
        policy TEXT NOT NULL,
        volume TEXT NOT NULL,
        at INTEGER NOT NULL,
        ok INTEGER NOT NULL,
        error TEXT,
        last_ok INTEGER,
        PRIMARY KEY (policy, volume)
    );",
    // 3: backups with their verification, and the mounts lvsnap made (so that a run after a
    // crash or a reboot can find and undo them).
    "CREATE TABLE backups (
        id INTEGER PRIMARY KEY,
        policy TEXT NOT NULL,
        vg TEXT NOT NULL,
        origin TEXT NOT NULL,
        engine TEXT NOT NULL,
        dir TEXT NOT NULL,
        name TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        snapshot_time INTEGER NOT NULL,
        temporary INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        state TEXT NOT NULL,
        error TEXT,
        bytes INTEGER,
        files INTEGER,
        manifest_sha256 TEXT,
        verified_at INTEGER,
        verify_ok INTEGER,
        verify_detail TEXT
    );
    CREATE INDEX backups_group ON backups (policy, vg, origin);
    CREATE TABLE mounts (
        id INTEGER PRIMARY KEY,
        vg TEXT NOT NULL,
        lv TEXT NOT NULL,
        dir TEXT NOT NULL,
        purpose TEXT NOT NULL,
        activated INTEGER NOT NULL,
        backup_id INTEGER REFERENCES backups (id),
        mounted_at INTEGER NOT NULL,
        released_at INTEGER
    );",
    // 4: restore history: files copied out of snapshots and backups, and rollbacks (merges).
    "CREATE TABLE restores (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        source TEXT NOT NULL,
        paths TEXT NOT NULL,
        destination TEXT NOT NULL,
        files INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        ok INTEGER NOT NULL,
        detail TEXT
    );
    CREATE TABLE rollbacks (
        id INTEGER PRIMARY KEY,
        snapshot_id INTEGER NOT NULL REFERENCES snapshots (id),
        vg TEXT NOT NULL,
        origin TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        guard TEXT,
        requested_at INTEGER NOT NULL,
        deferred INTEGER NOT NULL,
        completed_at INTEGER
    );",
    // 5: the process that runs a backup or holds a mount, so that a run during a long backup
    // (which lets go of the lock while it copies) tells a live one from one a crash left.
    "ALTER TABLE backups ADD COLUMN pid INTEGER;
    ALTER TABLE mounts ADD COLUMN pid INTEGER;",
    // 6: the journal of a thin rollback that swaps names (several LVM commands): the UUIDs of
    // the two volumes and the step about to run, so an interrupted swap can be completed.
    "ALTER TABLE rollbacks ADD COLUMN swap_origin_uuid TEXT;
    ALTER TABLE rollbacks ADD COLUMN swap_snapshot_uuid TEXT;
    ALTER TABLE rollbacks ADD COLUMN swap_step INTEGER;",
    // 7: a backup kept in a repository of its own (restic): the snapshot's ID there, and what
    // the backup added to the repository (deduplicated, compressed) as against its total.
    // A repository's prunes: when it was last pruned, and whether lvsnap has forgotten
    // snapshots since (whose data only a prune frees).
    // run_tag is the random tag the snapshot carries (recorded before restic runs, so a
    // snapshot an interrupted backup left can be found and no other); remote_pending is 1
    // while the repository may still hold a snapshot lvsnap means to forget.
    "ALTER TABLE backups ADD COLUMN remote_id TEXT;
    ALTER TABLE backups ADD COLUMN bytes_added INTEGER;
    ALTER TABLE backups ADD COLUMN run_tag TEXT;
    ALTER TABLE backups ADD COLUMN remote_pending INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE repository_prunes (
        repository TEXT PRIMARY KEY,
        pruned_at INTEGER,
        pending INTEGER NOT NULL
    );",
    // 8: staging directories of restores (the path's bytes, the process), recorded before each
    // is made and removed after it is gone, so that one a killed restore left is found.
    "CREATE TABLE staging (
        path BLOB PRIMARY KEY,
        pid INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    );",
    // 9: pools (or volume groups) where removing snapshots for space freed nothing: "VG" or
    // "VG/POOL", from when. Space pressure leaves them alone until they are below threshold.
    "CREATE TABLE space_stalls (
        place TEXT PRIMARY KEY,
        since INTEGER NOT NULL
    );",
    // 10: the fill a place stalled at (data and metadata percent): filling on from there, it
    // is tried again.
    "ALTER TABLE space_stalls ADD COLUMN data REAL;
    ALTER TABLE space_stalls ADD COLUMN metadata REAL;",
    // 11: the snapshot set a snapshot belongs to ("POLICY.TIME"), as its `lvsnap-set` tag says:
    // members of one set were taken together and are kept, removed and rolled back together.
    "ALTER TABLE snapshots ADD COLUMN set_id TEXT;",
    // 12: a set given up as a whole (taking it failed after members were created, or space
    // pressure removes it): set on every member before the first is removed, so that what a
    // crash or a failed lvremove leaves of it is found and removed by the next run.
    "ALTER TABLE snapshots ADD COLUMN set_given_up TEXT;",
    // 13: replicas: each thin snapshot sent to a policy's target pool, recorded `sending`
    // before the stream starts and finished as `complete` or `failed`. The newest complete one
    // of each volume and target is the base of the next increment, and one still `sending`
    // may have become it: both keep their source snapshot from pruning.
    "CREATE TABLE replicas (
        id INTEGER PRIMARY KEY,
        policy TEXT NOT NULL,
        target TEXT NOT NULL,
        vg TEXT NOT NULL,
        origin TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        snapshot_uuid TEXT NOT NULL,
        snapshot_time INTEGER NOT NULL,
        base TEXT,
        state TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        bytes INTEGER,
        duration_ms INTEGER,
        error TEXT,
        pid INTEGER
    );
    CREATE INDEX replicas_group ON replicas (policy, target, vg, origin);",
    // 14: the command log, run history, intents and the records of snapshots long gone are
    // trimmed by age and count (`history-days`, `history-rows`), at most once a day; the run
    // counters the metrics report outlive the rows they counted.
    "CREATE INDEX events_at ON events (at);
    CREATE INDEX runs_at ON runs (at);
    CREATE INDEX intents_snapshot ON intents (snapshot_id);
    CREATE INDEX snapshot_states_snapshot ON snapshot_states (snapshot_id);
    CREATE TABLE history (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        runs INTEGER NOT NULL,
        failed INTEGER NOT NULL,
        trimmed_at INTEGER
    );
    INSERT INTO history (id, runs, failed) SELECT 1, COUNT(*), COALESCE(SUM(ok = 0), 0) FROM runs;",
];
