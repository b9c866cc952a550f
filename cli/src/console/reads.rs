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
    let (read, open) = futures::future::try_join(
        store.recent(source, None, Some(since), OVERVIEW_CAP),
        store.open_counts(source, overdue_before_ms),
    )
    .await?;
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

/// One source's entries for a list page: read from `below` until more than
/// a page is kept or the read budget is spent.
async fn read_for_page(
    store: &dyn ConsoleStore,
    source: &str,
    filter: &JobFilter,
    id_prefix: &str,
    below: Option<&Position>,
) -> Result<(SourceRead, usize), PortError> {
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
    Ok((SourceRead { jobs: kept, stopped_at }, read))
}

/// A page of the list over `sources`, read side by side. The cursor's
/// position holds for every source: a list runs in one order across them.
pub async fn list(
    store: &dyn ConsoleStore,
    sources: &[String],
    filter: &JobFilter,
    id_prefix: &str,
    below: Option<&Position>,
) -> Result<Listed, PortError> {
    let reads = futures::future::try_join_all(
        sources
            .iter()
            .map(|source| read_for_page(store, source, filter, id_prefix, below)),
    )
    .await?;
    let read = reads.iter().map(|(_, n)| n).sum();
    Ok(Listed {
        page: merge(reads.into_iter().map(|(r, _)| r).collect(), &JobFilter::Any, PAGE),
        read,
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

#[cfg(test)]
mod tests {
    use super::*;
    use jobhook::domain::job::JobFields;

    fn entry(id: &str, outcome: Outcome, status: JobStatus, at: &str) -> TimelineEntry {
        TimelineEntry {
            event_id: id.into(),
            outcome,
            kind: format!("job.{status}"),
            origin: Origin::Webhook,
            status: Some(status),
            progress: None,
            received_at: at.into(),
            provider_time: None,
            repeats: None,
            last_received_at: None,
            archive: None,
        }
    }

    fn state(transitions: u64, kept: bool) -> JobState {
        JobState {
            source: "dev".into(),
            job_id: "j".into(),
            fields: JobFields {
                status: JobStatus::Completed,
                progress: None,
                output_url: None,
                error: None,
                result: None,
            },
            first_seen: String::new(),
            updated_at: "t9".into(),
            provider_time: None,
            transitions,
            last_event_id: None,
            terminal_origin: None,
            abandoned_at: None,
            kept_outputs: kept.then(Vec::new),
            outputs_lost: None,
        }
    }

    #[test]
    fn each_applied_event_and_the_keep_is_one_numbered_notification() {
        let entries = [
            entry("a", Outcome::Applied, JobStatus::Processing, "t1"),
            entry("b", Outcome::Duplicate, JobStatus::Processing, "t2"),
            entry("c", Outcome::Applied, JobStatus::Completed, "t3"),
        ];
        let rows = notifications(&state(3, true), &entries);
        let numbers: Vec<(u64, &str, Origin)> = rows.iter().map(|(n, to, o, _)| (*n, to.as_str(), *o)).collect();
        assert_eq!(
            numbers,
            [
                (1, "processing", Origin::Webhook),
                (2, "completed", Origin::Webhook),
                (3, "completed (outputs kept)", Origin::Keep)
            ]
        );
        // Entries whose timeline expired leave the numbers of those left.
        let rows = notifications(&state(5, false), &entries);
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [4, 5]);
    }

    #[test]
    fn a_url_names_only_the_filters_there_are() {
        assert_eq!(filter_named("", 7), Some(JobFilter::Any));
        assert_eq!(filter_named("overdue", 7), Some(JobFilter::Overdue { before_ms: 7 }));
        assert_eq!(filter_named("failed", 7), Some(JobFilter::Status(JobStatus::Failed)));
        for name in FILTERS {
            assert!(filter_named(name, 0).is_some(), "{name}");
        }
        assert_eq!(filter_named("<script>", 0), None);
    }
}
