//! Submitting a sweep: migrate, store the sweep (its YAML and report info), queue its jobs.

use cg_store::{Store, SubmitOptions, SubmitSummary};
use cg_sweep::Sweep;

use crate::Result;

/// Migrates the database, then creates the sweep and queues its jobs in one transaction (a
/// submission killed half-way leaves nothing). Jobs already stored keep their state unless
/// `options.rerun` (then completed and failed ones are queued again, their old result kept until
/// a new one replaces it). A different file under an existing sweep's name is
/// [`cg_store::Error::SweepExists`] unless `options.merge`. A `method: mo-asha` sweep queues its
/// first draws; [`crate::advance_search`] submits the rest as results arrive. The caller checks
/// the job limit ([`Sweep::check_job_limit`]) before opening the database, so that a refused
/// sweep writes nothing. `--rerun` of a search is refused: its decisions follow from the
/// results it took.
pub async fn submit_sweep(
    store: &Store,
    sweep: &Sweep,
    options: &SubmitOptions,
) -> Result<SubmitSummary> {
    if options.rerun && sweep.search_settings().is_some() {
        return Err(crate::Error::Refused(format!(
            "--rerun cannot rerun the search `{}` (`method: mo-asha`): its decisions follow \
             from the results it took. Delete the sweep (`cg sweep delete {}`) and run the \
             file again, or give it a new `name:`",
            sweep.name(),
            sweep.name()
        )));
    }
    store.migrate().await?;
    if sweep.search_settings().is_some() {
        // A new version of a running search's file (`merge`) must make the decisions already
        // recorded; it is refused before anything is written, so the stored file stays.
        if options.merge && store.search(sweep.name()).await?.is_some() {
            crate::search::check_search_file(store, sweep).await?;
        }
        // The sweep's row, under the same identity rule, with its baseline jobs; the other jobs
        // come from the search, which records its draws idempotently (a submission killed here
        // is completed by the next).
        let baseline = store
            .submit_sweep(
                sweep.name(),
                sweep.source_text(),
                &sweep.info(),
                &sweep.baseline_jobs(),
                options,
            )
            .await?;
        let s = crate::search::start_search(store, sweep)
            .await?
            .unwrap_or_default();
        return Ok(SubmitSummary {
            added: baseline.added + s.jobs_added,
            ..baseline
        });
    }
    let jobs = sweep.expand();
    Ok(store
        .submit_sweep(
            sweep.name(),
            sweep.source_text(),
            &sweep.info(),
            &jobs,
            options,
        )
        .await?)
}
