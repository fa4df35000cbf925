//! Submitting a sweep: migrate, store the sweep (its YAML and report info), queue its jobs.

use cg_store::{Store, SubmitOptions, SubmitSummary};
use cg_sweep::Sweep;

use crate::Result;

/// Migrates the database, creates or updates the sweep and queues its jobs (a `method: mo-asha`
/// sweep: its first draws; [`crate::advance_search`] submits the rest as results arrive). Jobs already stored
/// keep their state unless `options.rerun` (then completed and failed ones are queued again).
/// The caller checks the job limit ([`Sweep::check_job_limit`]) before opening the database, so
/// that a refused sweep writes nothing.
pub async fn submit_sweep(
    store: &Store,
    sweep: &Sweep,
    options: &SubmitOptions,
) -> Result<SubmitSummary> {
    store.migrate().await?;
    store
        .upsert_sweep(sweep.name(), sweep.source_text(), &sweep.info())
        .await?;
    if sweep.search_settings().is_some() {
        // A search submits its jobs as it decides them: the first draws now.
        let s = crate::search::start_search(store, sweep)
            .await?
            .unwrap_or_default();
        return Ok(SubmitSummary {
            added: s.jobs_added,
            ..SubmitSummary::default()
        });
    }
    let jobs = sweep.expand();
    Ok(store.submit_jobs_with(sweep.name(), &jobs, options).await?)
}
