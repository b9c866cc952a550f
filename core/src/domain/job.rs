//! Job state rules: the one definition of what "moves a job forward".
//!
//! A job goes `submitted` → `processing` → `completed` | `failed` |
//! `canceled`. An event is
//! applied only if it has a higher status rank, or the same `processing` rank
//! with strictly higher progress. Terminal states are final. Because the new
//! state depends only on the event that wins, the final state after any
//! permutation (and duplication) of a job's events is the in-order one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::archive_ref::ArchiveLocation;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Submitted,
    Processing,
    Completed,
    Failed,
    /// Stopped on request (Replicate's `canceled`, OpenAI's `cancelled`):
    /// terminal, and not a failure.
    Canceled,
}

impl JobStatus {
    pub fn rank(self) -> u8 {
        match self {
            Self::Submitted => 0,
            Self::Processing => 1,
            Self::Completed | Self::Failed | Self::Canceled => 2,
        }
    }

    pub fn is_terminal(self) -> bool {
        self.rank() == 2
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "submitted" => Ok(Self::Submitted),
            "processing" => Ok(Self::Processing),
            "completed" => Ok(Self::Completed),
            "failed" => Ok(Self::Failed),
            "canceled" => Ok(Self::Canceled),
            _ => Err(()),
        }
    }
}

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Webhook,
    Poll,
    /// `jobhook replay` re-derived the job from its archive.
    Replay,
    /// The job's outputs were kept: a transition that moves no status and
    /// announces where the copies are.
    Keep,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Poll => "poll",
            Self::Replay => "replay",
            Self::Keep => "keep",
        }
    }
}

impl FromStr for Origin {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "webhook" => Ok(Self::Webhook),
            "poll" => Ok(Self::Poll),
            "replay" => Ok(Self::Replay),
            "keep" => Ok(Self::Keep),
            _ => Err(()),
        }
    }
}

/// One observation of a job's state: a webhook or a poll answer, with the
/// identity and origin the store dedupes and records on. Its fields become
/// the job's through [`JobFields::from_event`], the one place they are copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    /// The dedupe key.
    pub event_id: String,
    pub source: String,
    pub job_id: String,
    /// The provider's event type, e.g. `job.progress` (kept in the timeline).
    pub kind: String,
    pub origin: Origin,
    pub status: JobStatus,
    /// 0 to 100.
    pub progress: Option<u8>,
    pub output_url: Option<String>,
    /// A string, or an object serialized as JSON.
    pub error: Option<String>,
    /// What a user needs to fetch the rest of the result: a JSON object of at
    /// most [`crate::domain::provider::MAX_RESULT_BYTES`], as text.
    pub result: Option<String>,
    /// When the provider says the event happened.
    pub provider_time: Option<OffsetDateTime>,
    /// Where what the provider sent for it is kept; the store records it in
    /// the event's timeline entry, so a duplicate is archived once.
    pub archive: Option<ArchiveLocation>,
}

/// The fields of a job that events move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFields {
    pub status: JobStatus,
    pub progress: Option<u8>,
    pub output_url: Option<String>,
    pub error: Option<String>,
    /// JSON object text, see [`JobEvent::result`]; serialized as the object.
    #[serde(default, with = "json_text")]
    pub result: Option<String>,
}

/// JSON text held as a string, written and read as the JSON it holds.
mod json_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(text: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
        text.as_deref()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
        Ok(Option::<Value>::deserialize(deserializer)?.map(|v| v.to_string()))
    }
}

impl JobFields {
    /// The fields a job has once `event` is applied: they come from the event
    /// alone, which is what makes the outcome independent of order.
    pub fn from_event(event: &JobEvent) -> Self {
        let progress = match event.status {
            JobStatus::Submitted => None,
            JobStatus::Completed => event.progress.or(Some(100)),
            JobStatus::Processing | JobStatus::Failed | JobStatus::Canceled => event.progress,
        };
        Self {
            status: event.status,
            progress,
            output_url: event.output_url.clone(),
            error: event.error.clone(),
            result: event.result.clone(),
        }
    }
}

/// What to do with an event, given the job's current status and progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Apply,
    /// It would move the job sideways or backwards.
    Stale,
    /// A different terminal status for a job that already ended.
    Conflict,
}

/// True when an event with `status`/`progress` moves a job that is at
/// `current`/`current_progress` forward. Storage adapters encode exactly this
/// rule in their conditional writes.
pub fn moves_forward(
    current: JobStatus,
    current_progress: Option<u8>,
    status: JobStatus,
    progress: Option<u8>,
) -> bool {
    status.rank() > current.rank()
        || (current == JobStatus::Processing
            && status == JobStatus::Processing
            && progress.is_some()
            && progress > current_progress)
}

/// Where an event sits in the order the state rule moves a job forward:
/// rank, then a processing event's progress. Ends share one place, so
/// sorting by it keeps their arrival order (the first end wins). Taken in
/// this order, one job's events end in the state any order gives (the rule
/// does not depend on order), and each one that can moves the job forward
/// instead of finding it already past, so each state it passed through is
/// notified.
pub fn forward_order(event: &JobEvent) -> (u8, Option<u8>) {
    let progress = (event.status == JobStatus::Processing)
        .then_some(event.progress)
        .flatten();
    (event.status.rank(), progress)
}

pub fn decide(current: Option<(JobStatus, Option<u8>)>, event: &JobEvent) -> Decision {
    let Some((status, progress)) = current else {
        return Decision::Apply;
    };
    if moves_forward(status, progress, event.status, event.progress) {
        Decision::Apply
    } else if status.is_terminal() && event.status.is_terminal() && status != event.status {
        Decision::Conflict
    } else {
        Decision::Stale
    }
}

/// The outcome recorded for each distinct event in a job's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Applied,
    Stale,
    Duplicate,
    Conflict,
    /// A poll the provider answered 404: recorded, the state is unchanged.
    NotFound,
    /// The reconciler gave up on a job the provider never resolved: it is no
    /// longer polled (a later webhook still applies and reopens it).
    Abandoned,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Stale => "stale",
            Self::Duplicate => "duplicate",
            Self::Conflict => "conflict",
            Self::NotFound => "not_found",
            Self::Abandoned => "abandoned",
        }
    }
}

impl FromStr for Outcome {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "applied" => Ok(Self::Applied),
            "stale" => Ok(Self::Stale),
            "duplicate" => Ok(Self::Duplicate),
            "conflict" => Ok(Self::Conflict),
            "not_found" => Ok(Self::NotFound),
            "abandoned" => Ok(Self::Abandoned),
            _ => Err(()),
        }
    }
}

impl From<Decision> for Outcome {
    fn from(d: Decision) -> Self {
        match d {
            Decision::Apply => Self::Applied,
            Decision::Stale => Self::Stale,
            Decision::Conflict => Self::Conflict,
        }
    }
}

/// The result of applying one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyResult {
    pub outcome: Outcome,
    /// The job's status before the event, where the store learned it: None
    /// for a job first seen now, or when its write did not say (the DynamoDB
    /// store's apply condition holds for every earlier state; the stream's
    /// old image, and so the notification, always says).
    pub from: Option<JobStatus>,
    /// The job's status after the event.
    pub to: Option<JobStatus>,
    /// Storage write requests this event cost.
    pub write_requests: u32,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobState {
    pub source: String,
    pub job_id: String,
    #[serde(flatten)]
    pub fields: JobFields,
    /// RFC 3339 times.
    pub first_seen: String,
    pub updated_at: String,
    /// The provider's time of the last applied event.
    pub provider_time: Option<String>,
    /// Applied transitions (a tracked job starts at 0).
    pub transitions: u64,
    pub last_event_id: Option<String>,
    /// For an ended job, whether a webhook or a poll got there first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_origin: Option<Origin>,
    /// When the reconciler gave up polling it (RFC 3339), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abandoned_at: Option<String>,
    /// The copies of its outputs, once kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_outputs: Option<Vec<super::outputs::KeptOutput>>,
    /// Why its outputs were not kept, when they were to be and were not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs_lost: Option<String>,
}

/// One distinct event received for a job, with what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub event_id: String,
    pub outcome: Outcome,
    pub kind: String,
    pub origin: Origin,
    pub status: Option<JobStatus>,
    pub progress: Option<u8>,
    pub received_at: String,
    pub provider_time: Option<String>,
    /// For an answer that repeats (the provider's 404): how many times it
    /// came and when it last did. One entry per job, not one per poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_received_at: Option<String>,
    /// Where what the provider sent is kept (`jobhook events` reads it).
    #[serde(skip)]
    pub archive: Option<ArchiveLocation>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn event(id: &str, status: JobStatus, progress: Option<u8>) -> JobEvent {
        JobEvent {
            event_id: id.into(),
            source: "s".into(),
            job_id: "j".into(),
            kind: format!("job.{status}"),
            origin: Origin::Webhook,
            status,
            progress,
            output_url: (status == JobStatus::Completed).then(|| format!("https://cdn/{id}")),
            error: (status == JobStatus::Failed).then(|| "boom".into()),
            result: None,
            provider_time: None,
            archive: None,
        }
    }

    /// Applies events the way the store does: dedupe by id, then decide.
    fn fold(events: &[JobEvent]) -> (Option<JobFields>, Vec<(String, Outcome)>) {
        let mut state: Option<JobFields> = None;
        let mut seen = HashSet::new();
        let mut log = Vec::new();
        for e in events {
            if !seen.insert(e.event_id.clone()) {
                log.push((e.event_id.clone(), Outcome::Duplicate));
                continue;
            }
            let decision = decide(state.as_ref().map(|s| (s.status, s.progress)), e);
            if decision == Decision::Apply {
                state = Some(JobFields::from_event(e));
            }
            log.push((e.event_id.clone(), decision.into()));
        }
        (state, log)
    }

    #[test]
    fn reordered_lifecycle_ends_completed() {
        let started = event("e1", JobStatus::Processing, None);
        let p40 = event("e2", JobStatus::Processing, Some(40));
        let p80 = event("e3", JobStatus::Processing, Some(80));
        let done = event("e4", JobStatus::Completed, None);
        let (state, log) = fold(&[done.clone(), p80.clone(), started.clone(), p40.clone()]);
        let state = state.expect("state");
        assert_eq!(state.status, JobStatus::Completed);
        assert_eq!(state.progress, Some(100));
        assert_eq!(state.output_url.as_deref(), Some("https://cdn/e4"));
        assert!(log[1..].iter().all(|(_, o)| *o == Outcome::Stale), "{log:?}");

        let (state, log) = fold(&[p80, p40, started]);
        assert_eq!(state.expect("state").progress, Some(80));
        assert_eq!(log[1].1, Outcome::Stale, "progress 40 after 80 is stale");
        assert_eq!(log[2].1, Outcome::Stale, "started after progress is stale");
    }

    #[test]
    fn terminal_states_are_final_and_conflicts_are_flagged() {
        let done = event("e1", JobStatus::Completed, None);
        let failed = event("e2", JobStatus::Failed, None);
        let again = event("e3", JobStatus::Completed, Some(100));
        let late = event("e4", JobStatus::Processing, Some(99));
        let (state, log) = fold(&[done, failed, again, late]);
        assert_eq!(state.expect("state").status, JobStatus::Completed);
        let outcomes: Vec<Outcome> = log.into_iter().map(|(_, o)| o).collect();
        assert_eq!(
            outcomes,
            [Outcome::Applied, Outcome::Conflict, Outcome::Stale, Outcome::Stale]
        );
    }

    #[test]
    fn progress_must_strictly_increase() {
        let cur = Some((JobStatus::Processing, Some(40)));
        assert_eq!(
            decide(cur, &event("a", JobStatus::Processing, Some(40))),
            Decision::Stale
        );
        assert_eq!(
            decide(cur, &event("a", JobStatus::Processing, Some(41))),
            Decision::Apply
        );
        assert_eq!(decide(cur, &event("a", JobStatus::Processing, None)), Decision::Stale);
        let no_progress = Some((JobStatus::Processing, None));
        assert_eq!(
            decide(no_progress, &event("a", JobStatus::Processing, Some(0))),
            Decision::Apply
        );
        let submitted = Some((JobStatus::Submitted, None));
        assert_eq!(
            decide(submitted, &event("a", JobStatus::Processing, None)),
            Decision::Apply
        );
        assert_eq!(
            decide(submitted, &event("a", JobStatus::Submitted, None)),
            Decision::Stale
        );
    }

    /// A consistent history of one job: started, strictly increasing progress,
    /// then at most one terminal event.
    fn history() -> impl Strategy<Value = Vec<JobEvent>> {
        (
            any::<bool>(),
            proptest::collection::btree_set(0u8..=100, 0..8),
            prop_oneof![
                Just(None),
                Just(Some(JobStatus::Completed)),
                Just(Some(JobStatus::Failed)),
                Just(Some(JobStatus::Canceled))
            ],
        )
            .prop_map(|(with_started, progress, terminal)| {
                let mut events = Vec::new();
                if with_started {
                    events.push(event("started", JobStatus::Processing, None));
                }
                for p in progress {
                    events.push(event(&format!("p{p}"), JobStatus::Processing, Some(p)));
                }
                if let Some(t) = terminal {
                    events.push(event("terminal", t, None));
                }
                events
            })
            .prop_filter("at least one event", |e| !e.is_empty())
    }

    /// A history, and a delivery of it: shuffled, with some events repeated.
    fn delivery() -> impl Strategy<Value = (Vec<JobEvent>, Vec<JobEvent>)> {
        history().prop_flat_map(|events| {
            let n = events.len();
            let dupes = proptest::collection::vec(0..n, 0..n * 2);
            (Just(events), dupes).prop_flat_map(|(events, dupes)| {
                let mut delivered = events.clone();
                delivered.extend(dupes.into_iter().map(|i| events[i].clone()));
                (Just(events), Just(delivered).prop_shuffle())
            })
        })
    }

    proptest! {
        #[test]
        fn any_permutation_with_duplicates_ends_in_the_in_order_state((in_order, delivered) in delivery()) {
            let (expected, _) = fold(&in_order);
            let (actual, log) = fold(&delivered);
            prop_assert_eq!(actual, expected);
            // Each distinct event gets exactly one non-duplicate outcome.
            let distinct: HashSet<&str> = in_order.iter().map(|e| e.event_id.as_str()).collect();
            let recorded = log.iter().filter(|(_, o)| *o != Outcome::Duplicate).count();
            prop_assert_eq!(recorded, distinct.len());
            prop_assert_eq!(log.len() - recorded, delivered.len() - in_order.len());
        }

        /// A batch may take one job's events in forward order: the final
        /// state is the one arrival order gives, and no event that applied
        /// in arrival order is found stale instead.
        #[test]
        fn taken_in_forward_order_a_job_s_events_end_the_same_and_apply_at_least_as_often((_, delivered) in delivery()) {
            let mut sorted = delivered.clone();
            sorted.sort_by_key(forward_order);
            let (arrival, arrival_log) = fold(&delivered);
            let (forward, forward_log) = fold(&sorted);
            prop_assert_eq!(forward, arrival);
            let applied = |log: &[(String, Outcome)]| log.iter().filter(|(_, o)| *o == Outcome::Applied).count();
            prop_assert!(applied(&forward_log) >= applied(&arrival_log));
        }

        #[test]
        fn state_never_moves_backwards((_, delivered) in delivery()) {
            let mut state: Option<JobFields> = None;
            for e in &delivered {
                let before = state.clone();
                if decide(state.as_ref().map(|s| (s.status, s.progress)), e) == Decision::Apply {
                    state = Some(JobFields::from_event(e));
                }
                if let (Some(b), Some(a)) = (before, state.as_ref()) {
                    prop_assert!(a.status.rank() >= b.status.rank());
                    if b.status.is_terminal() { prop_assert_eq!(&b, a); }
                    if a.status == JobStatus::Processing && b.status == JobStatus::Processing {
                        prop_assert!(a.progress >= b.progress);
                    }
                }
            }
        }
    }

    /// Ends keep their arrival order, so the first end still wins; a
    /// start and progress come before them, lowest progress first.
    #[test]
    fn forward_order_puts_a_start_before_progress_before_ends_and_keeps_ends_as_they_came() {
        let mut events = [
            event("failed", JobStatus::Failed, None),
            event("completed", JobStatus::Completed, Some(100)),
            event("p75", JobStatus::Processing, Some(75)),
            event("started", JobStatus::Processing, None),
            event("p25", JobStatus::Processing, Some(25)),
            event("submitted", JobStatus::Submitted, None),
        ];
        events.sort_by_key(forward_order);
        let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["submitted", "started", "p25", "p75", "failed", "completed"]);
    }

    /// The names are stored in the table and sent on the bus: each one parses
    /// back to its value and is the name serde writes.
    #[test]
    fn status_outcome_and_origin_names_round_trip_and_match_serde() {
        use JobStatus::*;
        for status in [Submitted, Processing, Completed, Failed, Canceled] {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(status));
            assert_eq!(status.to_string(), status.as_str());
            assert_eq!(serde_json::to_value(status).expect("json"), status.as_str());
        }
        for outcome in [
            Outcome::Applied,
            Outcome::Stale,
            Outcome::Duplicate,
            Outcome::Conflict,
            Outcome::NotFound,
            Outcome::Abandoned,
        ] {
            assert_eq!(outcome.as_str().parse::<Outcome>(), Ok(outcome));
            assert_eq!(serde_json::to_value(outcome).expect("json"), outcome.as_str());
        }
        for origin in [Origin::Webhook, Origin::Poll] {
            assert_eq!(serde_json::to_value(origin).expect("json"), origin.as_str());
        }
        assert_eq!("Completed".parse::<JobStatus>(), Err(()));
        assert_eq!("".parse::<Outcome>(), Err(()));
    }

    #[test]
    fn only_ended_statuses_are_terminal_and_a_decision_names_its_outcome() {
        use JobStatus::*;
        let terminal: Vec<JobStatus> = [Submitted, Processing, Completed, Failed, Canceled]
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, [Completed, Failed, Canceled]);
        assert_eq!(Outcome::from(Decision::Apply), Outcome::Applied);
        assert_eq!(Outcome::from(Decision::Stale), Outcome::Stale);
        assert_eq!(Outcome::from(Decision::Conflict), Outcome::Conflict);
    }

    /// `result` is JSON text inside, a JSON object outside (the CLI's
    /// `--json`, the notification's detail).
    #[test]
    fn a_result_is_written_and_read_as_the_object_it_holds() {
        let fields = JobFields {
            status: JobStatus::Completed,
            progress: Some(100),
            output_url: None,
            error: None,
            result: Some(r#"{"id":"p1","n":2}"#.into()),
        };
        let written = serde_json::to_value(&fields).expect("json");
        assert_eq!(written["result"], serde_json::json!({"id": "p1", "n": 2}));
        let read: JobFields = serde_json::from_value(written).expect("reads back");
        assert_eq!(read, fields);
        let without: JobFields =
            serde_json::from_str(r#"{"status":"submitted","progress":null,"output_url":null,"error":null}"#)
                .expect("no result");
        assert_eq!(without.result, None);
    }
}
