//! `jobhook replay`'s use case: read a job and its archive, derive what the
//! current profile makes of it, and, when asked, write the difference as one
//! correction.

use crate::archive::Archiver;
use crate::domain::archive::ArchiveRecord;
use crate::domain::job::{JobEvent, JobState, Origin, Outcome};
use crate::domain::provider::ProviderProfile;
use crate::domain::replay::{derive, Derivation};
use crate::ports::{JobQuery, JobStore, PortError};

/// A correction lost to a concurrent apply is derived again this many times.
const MAX_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobReplay {
    /// The job as stored when the archive was read.
    pub stored: JobState,
    pub derivation: Derivation,
    /// What the stored job must become; None when the archive agrees.
    pub correction: Option<JobEvent>,
    /// Whether the correction was written.
    pub applied: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no job {0}")]
    NoJob(String),
    #[error(transparent)]
    Store(#[from] PortError),
    /// Deriving from part of the history could undo what the rest did.
    #[error("the archive of {job} is incomplete: {missing} of its events were not archived (they predate the archive or their records expired); nothing was derived")]
    Incomplete { job: String, missing: usize },
    #[error("the archived record of event {event_id:?} cannot be read: {reason}")]
    Unreadable { event_id: String, reason: String },
    #[error("{job} kept changing while it was replayed; try again")]
    Contended { job: String },
}

/// Replays one job. With `apply`, a difference is written as a correction
/// (transitions continue; a second replay finds nothing to do).
pub async fn replay_job<S>(
    store: &S,
    archiver: &Archiver,
    profile: &dyn ProviderProfile,
    source: &str,
    job_id: &str,
    apply: bool,
) -> Result<JobReplay, ReplayError>
where
    S: JobStore + JobQuery + ?Sized,
{
    let job = format!("{source}/{job_id}");
    for _ in 0..MAX_ATTEMPTS {
        let stored = store
            .get(source, job_id)
            .await?
            .ok_or_else(|| ReplayError::NoJob(job.clone()))?;
        let records = archived_records(store, archiver, source, job_id, &job).await?;
        let derivation = derive(&records, job_id, profile);
        let correction = derivation.correction(&stored);
        let applied = match (&correction, apply) {
            (Some(event), true) => {
                if !store.correct(event, stored.transitions).await? {
                    continue;
                }
                true
            }
            _ => false,
        };
        return Ok(JobReplay {
            stored,
            derivation,
            correction,
            applied,
        });
    }
    Err(ReplayError::Contended { job })
}

/// The job's archived records, oldest first. Every event the job's state may
/// rest on must have one.
async fn archived_records<S>(
    store: &S,
    archiver: &Archiver,
    source: &str,
    job_id: &str,
    job: &str,
) -> Result<Vec<ArchiveRecord>, ReplayError>
where
    S: JobQuery + ?Sized,
{
    let timeline = store.timeline(source, job_id).await?;
    let relevant = timeline.iter().filter(|e| {
        e.origin != Origin::Replay && matches!(e.outcome, Outcome::Applied | Outcome::Stale | Outcome::Conflict)
    });
    let missing = relevant.clone().filter(|e| e.archive.is_none()).count();
    if missing > 0 {
        return Err(ReplayError::Incomplete {
            job: job.to_owned(),
            missing,
        });
    }
    let mut records = Vec::new();
    for entry in relevant {
        let location = entry.archive.as_ref().expect("checked above");
        let record = archiver.read(location).await.map_err(|e| ReplayError::Unreadable {
            event_id: entry.event_id.clone(),
            reason: e.to_string(),
        })?;
        records.push(record);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::adapters::memory::InMemoryJobStore;
    use crate::clock::ManualClock;
    use crate::domain::archive::{ArchiveLocation, ArchiveRecord, RecordKind};
    use crate::domain::event::job_event_from_delivery;
    use crate::domain::job::JobStatus;
    use crate::domain::provider::profile;

    fn record(body: &str) -> ArchiveRecord {
        ArchiveRecord {
            kind: RecordKind::Delivery,
            source: "acme".into(),
            received_at: "2026-05-13T12:00:05Z".into(),
            scheme: Some("github".into()),
            verification: Some("verified".into()),
            webhook_id: None,
            signed_at: None,
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
            answer: None,
        }
    }

    const STARTED: &str = r#"{"id":"e1","type":"job.started","data":{"job_id":"j","status":"processing"}}"#;
    const DONE: &str = r#"{"id":"e2","type":"job.completed","data":{"job_id":"j","status":"completed","output_url":"https://cdn/j.mp4"}}"#;

    /// Applies `body` as the processor would, with a profile that may have
    /// read it wrongly (`misread` drops the output URL).
    async fn deliver(store: &InMemoryJobStore, body: &str, misread: bool) {
        let record = record(body);
        let mut event = job_event_from_delivery("acme", None, body.as_bytes(), profile("generic").unwrap())
            .expect("parses")
            .event;
        if misread {
            event.output_url = None;
        }
        event.archive = Some(ArchiveLocation::Inline(record.encode()));
        store.apply(&event).await.expect("applies");
    }

    #[tokio::test]
    async fn a_misread_job_is_repaired_once_and_a_second_replay_changes_nothing() {
        let store = InMemoryJobStore::new(Arc::new(ManualClock::at_unix(1_778_673_600)));
        deliver(&store, STARTED, false).await;
        deliver(&store, DONE, true).await;
        let archiver = Archiver::inline_only();
        let generic = profile("generic").unwrap();

        let dry = replay_job(&store, &archiver, generic, "acme", "j", false)
            .await
            .expect("replays");
        assert!(!dry.applied);
        let correction = dry.correction.expect("the archive disagrees");
        assert_eq!(correction.output_url.as_deref(), Some("https://cdn/j.mp4"));
        assert_eq!(
            store.get("acme", "j").await.unwrap().unwrap().fields.output_url,
            None,
            "a dry run writes nothing"
        );

        let applied = replay_job(&store, &archiver, generic, "acme", "j", true)
            .await
            .expect("replays");
        assert!(applied.applied);
        let state = store.get("acme", "j").await.unwrap().unwrap();
        assert_eq!(
            (
                state.fields.status,
                state.fields.output_url.as_deref(),
                state.transitions
            ),
            (JobStatus::Completed, Some("https://cdn/j.mp4"), 3)
        );
        let again = replay_job(&store, &archiver, generic, "acme", "j", true)
            .await
            .expect("replays");
        assert_eq!((again.correction, again.applied), (None, false));
        assert_eq!(store.get("acme", "j").await.unwrap().unwrap().transitions, 3);
    }

    #[tokio::test]
    async fn a_job_with_events_older_than_its_archive_is_not_derived_from_part_of_them() {
        let store = InMemoryJobStore::new(Arc::new(ManualClock::at_unix(1_778_673_600)));
        let unarchived = job_event_from_delivery("acme", None, DONE.as_bytes(), profile("generic").unwrap())
            .unwrap()
            .event;
        store.apply(&unarchived).await.unwrap();
        deliver(&store, STARTED, false).await;
        let error = replay_job(
            &store,
            &Archiver::inline_only(),
            profile("generic").unwrap(),
            "acme",
            "j",
            true,
        )
        .await
        .expect_err("refused");
        assert!(matches!(error, ReplayError::Incomplete { missing: 1, .. }), "{error}");
        let missing = replay_job(
            &store,
            &Archiver::inline_only(),
            profile("generic").unwrap(),
            "acme",
            "nope",
            true,
        )
        .await
        .expect_err("no job");
        assert!(matches!(missing, ReplayError::NoJob(_)));
    }
}
