//! Claim + complete round trips per second with concurrent workers, on a temporary SQLite file
//! and, when `CG_TEST_PG_URL` is set, on PostgreSQL (in a scratch schema, dropped afterwards).
//!
//! ```sh
//! cargo run --release -p cg-store --example queue_bench -- [WORKERS] [JOBS] [durable]
//! ```
//! Defaults: 8 workers, 5,000 jobs, commits that do not wait for the disk; `durable` sets
//! `StoreOptions::durable_commits` (one flush per commit).

use std::time::Duration;

use cg_store::{Store, StoreOptions, bench_queue};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let workers: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(8);
    let jobs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5000);
    let durable = args.next().as_deref() == Some("durable");

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.db");
    let mut options = StoreOptions::new(&path);
    options.durable_commits = durable;
    let store = Store::open_with(options).await?;
    store.migrate().await?;
    let label = if durable { " (durable commits)" } else { "" };
    println!("{}{label}", bench_queue(&store, workers, jobs).await?);
    store.close().await;

    if let Ok(base) = std::env::var("CG_TEST_PG_URL") {
        let schema = format!("cg_bench_{}", std::process::id());
        run_sql(&base, &format!("CREATE SCHEMA {schema}")).await?;
        let sep = if base.contains('?') { '&' } else { '?' };
        let mut options = StoreOptions::new(format!("{base}{sep}options[search_path]={schema}"));
        options.max_connections = (workers as u32 + 2).max(4);
        options.acquire_timeout = Duration::from_secs(30);
        options.durable_commits = durable;
        let store = Store::open_with(options).await?;
        store.migrate().await?;
        let report = bench_queue(&store, workers, jobs).await;
        store.close().await;
        run_sql(&base, &format!("DROP SCHEMA {schema} CASCADE")).await?;
        println!("{}{label}", report?);
    } else {
        println!("postgres: skipped (set CG_TEST_PG_URL, e.g. eval \"$(.ci/postgres.sh start)\")");
    }
    Ok(())
}

async fn run_sql(url: &str, sql: &str) -> Result<(), Box<dyn std::error::Error>> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}
