//! Claim + complete round trips per second with concurrent workers, on a temporary SQLite file
//! and, when `CG_TEST_PG_URL` is set, on PostgreSQL (in a scratch schema, dropped afterwards).
//!
//! ```sh
//! cargo run --release -p cg-store --example queue_bench -- [WORKERS] [JOBS]   # default 8 5000
//! ```

use std::time::Duration;

use cg_store::{Store, StoreOptions, bench_queue};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let workers: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(8);
    let jobs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5000);

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.db");
    let store = Store::open(&path).await?;
    store.migrate().await?;
    println!("{}", bench_queue(&store, workers, jobs).await?);
    store.close().await;

    if let Ok(base) = std::env::var("CG_TEST_PG_URL") {
        let schema = format!("cg_bench_{}", std::process::id());
        run_sql(&base, &format!("CREATE SCHEMA {schema}")).await?;
        let sep = if base.contains('?') { '&' } else { '?' };
        let mut options = StoreOptions::new(format!("{base}{sep}options[search_path]={schema}"));
        options.max_connections = (workers as u32 + 2).max(4);
        options.acquire_timeout = Duration::from_secs(30);
        let store = Store::open_with(options).await?;
        store.migrate().await?;
        let report = bench_queue(&store, workers, jobs).await;
        store.close().await;
        run_sql(&base, &format!("DROP SCHEMA {schema} CASCADE")).await?;
        println!("{}", report?);
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
