//! The two-engine trick: each macro expands its body once for SQLite and once for PostgreSQL, so one
//! piece of query code (runtime `sqlx::query`, `$1` placeholders, which SQLite accepts too) is
//! type-checked against both drivers without a generic-bounds maze or the lossy `Any` driver.
//! Inside a body, `$pg` is a `bool` for the few statements that differ, and `$db` names the
//! `sqlx::Database` type (for `QueryBuilder`).

/// Runs `$body` with `$pool` bound to a pool that may be used for reads.
macro_rules! with_reader {
    ($store:expr, |$pool:ident, $pg:ident, $db:ident| $body:expr) => {{
        match &$store.engine {
            $crate::store::Engine::Sqlite { read, .. } => {
                #[allow(unused)]
                type $db = ::sqlx::Sqlite;
                let $pool = read;
                #[allow(unused)]
                let $pg = false;
                $body
            }
            $crate::store::Engine::Postgres { pool } => {
                #[allow(unused)]
                type $db = ::sqlx::Postgres;
                let $pool = pool;
                #[allow(unused)]
                let $pg = true;
                $body
            }
        }
    }};
}

/// Runs `$body` inside one write transaction bound to `$tx`, and commits when `$body` finishes
/// without `?` returning early (an early return drops `$tx`, which rolls it back). On SQLite the
/// transaction is `BEGIN IMMEDIATE` on the process's single writer connection, so it takes the
/// write lock up front and never fails half-way on a read-to-write lock upgrade.
macro_rules! in_write_tx {
    ($store:expr, |$tx:ident, $pg:ident, $db:ident| $body:expr) => {{
        match &$store.engine {
            $crate::store::Engine::Sqlite { write, .. } => {
                #[allow(unused)]
                type $db = ::sqlx::Sqlite;
                #[allow(unused)]
                let $pg = false;
                let mut $tx = write.begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            $crate::store::Engine::Postgres { pool } => {
                #[allow(unused)]
                type $db = ::sqlx::Postgres;
                #[allow(unused)]
                let $pg = true;
                let mut $tx = pool.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    }};
}

/// Runs `$body` with `$pool` bound to a pool for single-statement writes (autocommit). On SQLite
/// this is the process's one writer connection; a lone write statement takes the write lock when
/// it starts, so it waits in the busy handler rather than failing.
macro_rules! with_writer {
    ($store:expr, |$pool:ident, $pg:ident, $db:ident| $body:expr) => {{
        match &$store.engine {
            $crate::store::Engine::Sqlite { write, .. } => {
                #[allow(unused)]
                type $db = ::sqlx::Sqlite;
                let $pool = write;
                #[allow(unused)]
                let $pg = false;
                $body
            }
            $crate::store::Engine::Postgres { pool } => {
                #[allow(unused)]
                type $db = ::sqlx::Postgres;
                let $pool = pool;
                #[allow(unused)]
                let $pg = true;
                $body
            }
        }
    }};
}
