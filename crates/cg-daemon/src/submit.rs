//! Submitting a sweep: migrate, store the sweep (its YAML and report info), queue its jobs.

use cg_store::{Store, SubmitOptions, SubmitSummary};
use cg_sweep::Sweep;

use crate::controls::advance_controls;
use crate::{Error, Result};

/// Migrates the database, then creates the sweep and queues its jobs in one transaction (a
/// submission killed half-way leaves nothing). Jobs already stored keep their state unless
/// `options.rerun` (then completed and failed ones are queued again, their old result kept until
/// a new one replaces it). A different file under an existing sweep's name is
/// [`Error::SweepExists`] (naming the file and the line of its `name:` key) unless `options.merge`. A `method: mo-asha` sweep queues its
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
            .await
            .map_err(|e| name_taken(sweep, e))?;
        let s = crate::search::start_search(store, sweep)
            .await?
            .unwrap_or_default();
        let controls = advance_controls(store, sweep.name()).await?;
        return Ok(SubmitSummary {
            added: baseline.added + s.jobs_added + controls,
            ..baseline
        });
    }
    let jobs = sweep.expand();
    let summary = store
        .submit_sweep(
            sweep.name(),
            sweep.source_text(),
            &sweep.info(),
            &jobs,
            options,
        )
        .await
        .map_err(|e| name_taken(sweep, e))?;
    // Every job may be stored and ended already (another sweep trained them): the controls
    // then follow at once.
    let controls = advance_controls(store, sweep.name()).await?;
    Ok(SubmitSummary {
        added: summary.added + controls,
        ..summary
    })
}

/// The store's same-name refusal located in the file: the store has no file, the sweep does.
fn name_taken(sweep: &Sweep, e: cg_store::Error) -> Error {
    let cg_store::Error::SweepExists(name) = &e else {
        return e.into();
    };
    let (file, pos) = sweep.name_origin();
    let location = match pos {
        Some(pos) => format!("{file}:{}:{}: name", pos.line, pos.column),
        None => format!("{file}: the name `{name}` comes from the file name (no `name:` key)"),
    };
    Error::SweepExists {
        sweep: name.clone(),
        location,
        message: e.to_string(),
    }
}
