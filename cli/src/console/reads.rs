//! What each page reads, through the ports: the overview from the activity
//! index's window and the open-jobs index's counts, lists from the activity
//! index a bounded number of entries at a time, a job from its item and
//! timeline. Nothing here scans the table.

use std::collections::BTreeMap;

use jobhook::domain::job::{JobState, JobStatus, Origin, Outcome, TimelineEntry};
use jobhook::domain::listing::{merge, JobFilter, JobSummary, ListPage, Position, SourceRead};
use jobhook::ports::{JobActivity, JobQuery, JobStore, PortError};

/// Everything the console reads and writes in the table.
pub trait ConsoleStore: JobStore + JobQuery + JobActivity {}
impl<T: JobStore + JobQuery + JobActivity> ConsoleStore for T {}

/// Index entries read per source for one list page, at most: a filter that
/// keeps few jobs shows a short page with a link to read on, rather than
/// reading a whole partition for one view.
pub const READ_BUDGET: usize = 1_000;
/// Jobs per list page.
pub const PAGE: usize = 50;
/// Jobs per source the overview counts in its window, at most.
pub const OVERVIEW_CAP: usize = 20_000;

/// The statuses, in the order a job moves through them.
pub const STATUSES: [JobStatus; 5] = [
    JobStatus::Submitted,
    JobStatus::Processing,
    JobStatus::Completed,
    JobStatus::Failed,
    JobStatus::Canceled,
];

/// The list filters a URL may name, as `status=`.
pub const FILTERS: [&str; 10] = [
    "any",
    "submitted",
    "processing",
    "completed",
    "failed",
    "canceled",
    "open",
    "overdue",
    "abandoned",
    "outputs-lost",
];

pub fn filter_named(name: &str, overdue_before_ms: i64) -> Option<JobFilter> {
    Some(match name {
        "" | "any" => JobFilter::Any,
        "open" => JobFilter::Open,
        "overdue" => JobFilter::Overdue {
            before_ms: overdue_before_ms,
        },
        "abandoned" => JobFilter::Abandoned,
        "outputs-lost" => JobFilter::OutputsLost,
        other => JobFilter::Status(other.parse().ok()?),
    })
}

/// One source's figures for the overview.
#[derive(Debug, Default)]
pub struct SourceFigures {
    pub by_status: BTreeMap<&'static str, u64>,
    pub abandoned: u64,
    pub outputs_lost: u64,
    pub ended_by: BTreeMap<&'static str, u64>,
    pub open: u64,
    pub overdue: u64,
    pub truncated: bool,
}

pub async fn source_figures(
    store: &dyn ConsoleStore,
    source: &str,
    since: &str,
    overdue_before_ms: i64,
) -> Result<SourceFigures, PortError> {
    let read = store.recent(source, None, Some(since), OVERVIEW_CAP).await?;
    let mut figures = SourceFigures {
        truncated: read.stopped_at.is_some(),
        ..Default::default()
    };
    for job in &read.jobs {
        *figures.by_status.entry(job.status.as_str()).or_default() += 1;
        figures.abandoned += u64::from(job.abandoned_at.is_some());
        figures.outputs_lost += u64::from(job.outputs_lost.is_some());
        if job.status.is_terminal() {
            let by = job.terminal_origin.map_or("unknown", Origin::as_str);
            *figures.ended_by.entry(by).or_default() += 1;
        }
    }
    let open = store.open_counts(source, overdue_before_ms).await?;
    figures.open = open.open;
    figures.overdue = open.overdue;
    Ok(figures)
}

/// One page of the job list over `sources`.
#[derive(Debug)]
pub struct Listed {
    pub page: ListPage,
    /// Index entries read for it.
    pub read: usize,
}

pub async fn list(
    store: &dyn ConsoleStore,
    sources: &[String],
    filter: &JobFilter,
    id_prefix: &str,
    below: Option<&Position>,
) -> Result<Listed, PortError> {
    let mut reads = Vec::with_capacity(sources.len());
    let mut read_total = 0;
    for source in sources {
        // The cursor's position holds for every source: a list runs in one
        // order across them all.
        let mut kept: Vec<JobSummary> = Vec::new();
        let mut at = below.cloned();
        let mut read = 0;
        let stopped_at = loop {
            let chunk: SourceRead = store.recent(source, at.as_ref(), None, 200).await?;
            read += chunk.jobs.len();
            kept.extend(
                chunk
                    .jobs
                    .into_iter()
                    .filter(|j| filter.keeps(j) && j.job_id.starts_with(id_prefix)),
            );
            match chunk.stopped_at {
                None => break None,
                Some(position) if kept.len() > PAGE || read >= READ_BUDGET => break Some(position),
                Some(position) => at = Some(position),
            }
        };
        read_total += read;
        reads.push(SourceRead { jobs: kept, stopped_at });
    }
    Ok(Listed {
        page: merge(reads, &JobFilter::Any, PAGE),
        read: read_total,
    })
}

/// The transitions a job's notifications carried, newest last: each applied
/// timeline entry, and the outputs' keep, which has none.
pub fn notifications(state: &JobState, entries: &[TimelineEntry]) -> Vec<(u64, String, Origin, String)> {
    let applied: Vec<&TimelineEntry> = entries.iter().filter(|e| e.outcome == Outcome::Applied).collect();
    let kept = state.kept_outputs.is_some();
    let last_applied = state.transitions.saturating_sub(u64::from(kept));
    let first = last_applied.saturating_sub(applied.len() as u64) + 1;
    let mut rows: Vec<(u64, String, Origin, String)> = applied
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let to = e.status.map_or_else(|| "-".to_owned(), |s| s.to_string());
            (first + i as u64, to, e.origin, e.received_at.clone())
        })
        .filter(|(n, ..)| *n >= 1)
        .collect();
    if kept {
        rows.push((
            state.transitions,
            "completed (outputs kept)".into(),
            Origin::Keep,
            state.updated_at.clone(),
        ));
    }
    rows
}
