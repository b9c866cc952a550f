//! The console's job lists: which jobs a filter keeps, and how one list is
//! read from several sources' index partitions, newest activity first, a
//! page at a time, with a bounded number of index entries read per page.

use super::job::{JobStatus, Origin};

/// A job as the activity index holds it: enough for a list row and the
/// overview's counts, without reading the job's item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    pub source: String,
    pub job_id: String,
    pub status: JobStatus,
    pub progress: Option<u8>,
    pub first_seen: String,
    /// RFC 3339 with milliseconds, so text order is time order.
    pub updated_at: String,
    pub transitions: u64,
    pub terminal_origin: Option<Origin>,
    pub abandoned_at: Option<String>,
    /// Epoch ms of its next poll, while it is open.
    pub next_poll_at: Option<i64>,
    /// Why its outputs were not kept, when they were to be and were not.
    pub outputs_lost: Option<String>,
}

impl JobSummary {
    pub fn position(&self) -> Position {
        Position {
            updated_at: self.updated_at.clone(),
            source: self.source.clone(),
            job_id: self.job_id.clone(),
        }
    }

    /// Open, and due for a poll since before `overdue_before_ms`: the
    /// reconciler should have polled it by now.
    pub fn is_overdue(&self, overdue_before_ms: i64) -> bool {
        self.next_poll_at.is_some_and(|due| due < overdue_before_ms)
    }
}

/// Where a job stands in a list. Lists run from the greatest position down
/// (latest activity first; ties by source, then job id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub updated_at: String,
    pub source: String,
    pub job_id: String,
}

impl Position {
    /// The position as a URL-safe cursor. Its fields are joined by a
    /// character no valid source name holds and hex-encoded, so any job id
    /// survives.
    pub fn to_cursor(&self) -> String {
        let joined = format!("{}\n{}\n{}", self.updated_at, self.source, self.job_id);
        joined.bytes().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_cursor(cursor: &str) -> Option<Self> {
        if cursor.len() % 2 != 0 || cursor.len() > 4096 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..cursor.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok())
            .collect();
        let text = String::from_utf8(bytes?).ok()?;
        let mut parts = text.splitn(3, '\n');
        Some(Self {
            updated_at: parts.next()?.to_owned(),
            source: parts.next()?.to_owned(),
            job_id: parts.next()?.to_owned(),
        })
    }
}

/// Which jobs a list keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobFilter {
    Any,
    Status(JobStatus),
    /// Not ended and still polled.
    Open,
    /// Open, and overdue for a poll since before this epoch ms.
    Overdue {
        before_ms: i64,
    },
    /// The reconciler stopped polling it.
    Abandoned,
    /// Its outputs were to be kept and were not.
    OutputsLost,
}

impl JobFilter {
    pub fn keeps(&self, job: &JobSummary) -> bool {
        match *self {
            Self::Any => true,
            Self::Status(status) => job.status == status,
            Self::Open => job.next_poll_at.is_some(),
            Self::Overdue { before_ms } => job.is_overdue(before_ms),
            Self::Abandoned => job.abandoned_at.is_some(),
            Self::OutputsLost => job.outputs_lost.is_some(),
        }
    }
}

/// One source's index entries as read for a page: latest first, each below
/// the page's starting position.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceRead {
    pub jobs: Vec<JobSummary>,
    /// Where reading stopped with entries left unread (None: read to the
    /// end of the partition).
    pub stopped_at: Option<Position>,
}

/// One page of a merged list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    pub jobs: Vec<JobSummary>,
    /// Where the next page starts; None on the last.
    pub next: Option<Position>,
}

/// Merges what was read from each source into one page of at most `limit`
/// jobs that `filter` keeps. A job is shown only if it is above every point
/// where some source stopped reading, so no job below that point is
/// skipped: the next page starts there. A page may then hold fewer than
/// `limit` jobs, or none, with a next page still to read.
pub fn merge(reads: Vec<SourceRead>, filter: &JobFilter, limit: usize) -> ListPage {
    let frontier = reads.iter().filter_map(|r| r.stopped_at.clone()).max();
    let mut jobs: Vec<JobSummary> = reads
        .into_iter()
        .flat_map(|r| r.jobs)
        .filter(|job| frontier.as_ref().is_none_or(|f| job.position() > *f))
        .filter(|job| filter.keeps(job))
        .collect();
    jobs.sort_by_key(|job| std::cmp::Reverse(job.position()));
    if jobs.len() > limit {
        jobs.truncate(limit);
        let next = jobs.last().map(JobSummary::position);
        return ListPage { jobs, next };
    }
    ListPage { jobs, next: frontier }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(source: &str, id: &str, at: &str, status: JobStatus) -> JobSummary {
        JobSummary {
            source: source.into(),
            job_id: id.into(),
            status,
            progress: None,
            first_seen: at.into(),
            updated_at: at.into(),
            transitions: 1,
            terminal_origin: None,
            abandoned_at: None,
            next_poll_at: (!status.is_terminal()).then_some(1_000),
            outputs_lost: None,
        }
    }

    #[test]
    fn any_job_id_survives_the_cursor() {
        for id in ["plain", "with\nnewline", "<script>", "ünïcödé", ""] {
            let at = Position {
                updated_at: "2026-12-04T01:00:00.000Z".into(),
                source: "replicate".into(),
                job_id: id.into(),
            };
            assert_eq!(Position::from_cursor(&at.to_cursor()), Some(at));
        }
        for bad in ["zz", "abc", "00", &"ab".repeat(3000)] {
            assert_eq!(Position::from_cursor(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sources_merge_newest_first_and_the_page_ends_at_its_last_job() {
        let a = SourceRead {
            jobs: vec![
                job("a", "1", "2026-01-01T00:00:05.000Z", JobStatus::Completed),
                job("a", "2", "2026-01-01T00:00:02.000Z", JobStatus::Completed),
            ],
            stopped_at: None,
        };
        let b = SourceRead {
            jobs: vec![
                job("b", "3", "2026-01-01T00:00:04.000Z", JobStatus::Processing),
                job("b", "4", "2026-01-01T00:00:01.000Z", JobStatus::Failed),
            ],
            stopped_at: None,
        };
        let page = merge(vec![a, b], &JobFilter::Any, 3);
        let ids: Vec<&str> = page.jobs.iter().map(|j| j.job_id.as_str()).collect();
        assert_eq!(ids, ["1", "3", "2"]);
        assert_eq!(page.next.map(|p| p.job_id), Some("2".to_owned()));
    }

    #[test]
    fn no_job_below_where_a_source_stopped_reading_is_shown_or_skipped() {
        // Source a stopped at 00:03: b's job at 00:01 could be preceded by a's
        // unread ones, so it waits for the next page, which starts at 00:03.
        let a = SourceRead {
            jobs: vec![job("a", "1", "2026-01-01T00:00:05.000Z", JobStatus::Completed)],
            stopped_at: Some(job("a", "9", "2026-01-01T00:00:03.000Z", JobStatus::Completed).position()),
        };
        let b = SourceRead {
            jobs: vec![job("b", "2", "2026-01-01T00:00:01.000Z", JobStatus::Completed)],
            stopped_at: None,
        };
        let page = merge(vec![a, b], &JobFilter::Any, 10);
        assert_eq!(page.jobs.len(), 1);
        assert_eq!(page.next.map(|p| p.updated_at), Some("2026-01-01T00:00:03.000Z".into()));
    }

    #[test]
    fn a_filter_keeps_only_its_jobs_and_the_last_page_has_no_next() {
        let mut abandoned = job("a", "2", "2026-01-01T00:00:02.000Z", JobStatus::Processing);
        abandoned.abandoned_at = Some("2026-01-01T00:00:02.000Z".into());
        abandoned.next_poll_at = None;
        let mut lost = job("a", "3", "2026-01-01T00:00:03.000Z", JobStatus::Completed);
        lost.outputs_lost = Some("expired".into());
        let read = || SourceRead {
            jobs: vec![
                lost.clone(),
                abandoned.clone(),
                job("a", "1", "2026-01-01T00:00:01.000Z", JobStatus::Processing),
            ],
            stopped_at: None,
        };
        let ids = |filter: JobFilter| -> Vec<String> {
            let page = merge(vec![read()], &filter, 10);
            assert_eq!(page.next, None);
            page.jobs.into_iter().map(|j| j.job_id).collect()
        };
        assert_eq!(ids(JobFilter::Abandoned), ["2"]);
        assert_eq!(ids(JobFilter::OutputsLost), ["3"]);
        assert_eq!(ids(JobFilter::Open), ["1"]);
        assert_eq!(ids(JobFilter::Overdue { before_ms: 1_001 }), ["1"]);
        assert!(ids(JobFilter::Overdue { before_ms: 1_000 }).is_empty());
        assert_eq!(ids(JobFilter::Status(JobStatus::Completed)), ["3"]);
        assert_eq!(ids(JobFilter::Any), ["3", "2", "1"]);
    }
}
