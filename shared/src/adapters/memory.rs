//! Fakes beside the adapters, for fast tests of the processor's and the
//! reconciler's logic: the job table in memory, built on the domain's rules
//! alone (a differential test runs it beside the DynamoDB store on the same
//! operations and checks that every answer and read agree), a sources
//! document, dead letters, and a provider API that answers from a script.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::{rfc3339, unix_ms, Clock};
use crate::domain::archive::SegmentRef;
use crate::domain::job::{
    decide, ApplyResult, Decision, JobEvent, JobFields, JobState, JobStatus, Origin, Outcome, TimelineEntry,
};
use crate::domain::listing::{JobSummary, Position, SourceRead};
use crate::domain::outputs::{KeepRequest, KeptOutput};
use crate::domain::schedule::DEFAULT_STALE_AFTER;
use crate::domain::sources::SourceConfig;
use crate::domain::stored::{
    due_after_activity, Transition, ABANDONED_EVENT_ID, ABANDONED_KIND, NOT_FOUND_EVENT_ID, NOT_FOUND_KIND,
};
use crate::ports::{
    ArchiveSegments, DeadLetters, JobActivity, JobPoller, JobQuery, JobStore, JobsPage, OpenCounts, OpenJob,
    OpenJobIndex, OutputRequests, PollError, PollOutcome, PortError, SourcesLoader, KEPT_OUTPUTS_EVENT_ID,
};

type JobKey = (String, String);

#[derive(Debug)]
struct Stored {
    state: JobState,
    /// In the open-jobs index while set: (due at, polls in a row that changed nothing).
    open: Option<(i64, u32)>,
}

#[derive(Debug, Default)]
struct Tables {
    jobs: BTreeMap<JobKey, Stored>,
    /// Per job, entries by event id.
    timelines: BTreeMap<JobKey, BTreeMap<String, TimelineEntry>>,
    rate_limits: HashMap<String, i64>,
}

/// [`JobStore`], [`JobQuery`] and [`OpenJobIndex`] in memory.
#[derive(Debug)]
pub struct InMemoryJobStore {
    clock: Arc<dyn Clock>,
    stale_after: Duration,
    tables: Mutex<Tables>,
}

fn key(source: &str, job_id: &str) -> JobKey {
    (source.to_owned(), job_id.to_owned())
}

impl InMemoryJobStore {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            stale_after: DEFAULT_STALE_AFTER,
            tables: Mutex::default(),
        }
    }

    /// An open job is due for a poll this long after its last applied event.
    pub fn with_stale_after(mut self, stale_after: Duration) -> Self {
        self.stale_after = stale_after;
        self
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        // A test that panicked holding the lock has failed already.
        self.tables.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every job in the open-jobs index, of any source, and when it is due.
    pub fn open_jobs(&self) -> Vec<(JobKey, i64)> {
        self.tables()
            .jobs
            .iter()
            .filter_map(|(k, stored)| stored.open.map(|(due, _)| (k.clone(), due)))
            .collect()
    }
}

/// Still completed with `output_url` and nothing kept: what the keeper's
/// records are conditioned on (the table's condition expression says it too).
fn keepable(state: &JobState, output_url: &str) -> bool {
    state.fields.status == JobStatus::Completed
        && state.fields.output_url.as_deref() == Some(output_url)
        && state.kept_outputs.is_none()
}

fn timeline_entry(event: &JobEvent, outcome: Outcome, now: &str) -> TimelineEntry {
    TimelineEntry {
        event_id: event.event_id.clone(),
        outcome,
        kind: event.kind.clone(),
        origin: event.origin,
        status: Some(event.status),
        progress: event.progress,
        received_at: now.to_owned(),
        provider_time: event.provider_time.map(rfc3339),
        repeats: None,
        last_received_at: None,
        archive: event.archive.clone(),
    }
}

#[async_trait]
impl JobStore for InMemoryJobStore {
    async fn apply(&self, event: &JobEvent) -> Result<ApplyResult, PortError> {
        let now = self.clock.now();
        let now_text = rfc3339(now);
        let mut tables = self.tables();
        let job = key(&event.source, &event.job_id);
        let current = tables
            .jobs
            .get(&job)
            .map(|s| (s.state.fields.status, s.state.fields.progress));
        let from = current.map(|(status, _)| status);
        if tables
            .timelines
            .get(&job)
            .is_some_and(|t| t.contains_key(&event.event_id))
        {
            return Ok(ApplyResult {
                outcome: Outcome::Duplicate,
                from,
                to: from,
                write_requests: 1,
            });
        }
        let decision = decide(current, event);
        let outcome = Outcome::from(decision);
        tables
            .timelines
            .entry(job.clone())
            .or_default()
            .insert(event.event_id.clone(), timeline_entry(event, outcome, &now_text));
        if decision != Decision::Apply {
            return Ok(ApplyResult {
                outcome,
                from,
                to: from,
                write_requests: 2,
            });
        }
        let transition = Transition::of(event, unix_ms(now), self.stale_after);
        let previous = tables.jobs.remove(&job).map(|s| s.state);
        let state = JobState {
            source: event.source.clone(),
            job_id: event.job_id.clone(),
            fields: transition.fields,
            first_seen: previous
                .as_ref()
                .map_or_else(|| now_text.clone(), |p| p.first_seen.clone()),
            updated_at: now_text,
            provider_time: event.provider_time.map(rfc3339),
            transitions: previous.as_ref().map_or(0, |p| p.transitions) + 1,
            last_event_id: Some(event.event_id.clone()),
            terminal_origin: transition
                .terminal_origin
                .or_else(|| previous.as_ref().and_then(|p| p.terminal_origin)),
            abandoned_at: None,
            // Only a completed job has them, and nothing applies over it.
            kept_outputs: previous.as_ref().and_then(|p| p.kept_outputs.clone()),
            outputs_lost: previous.and_then(|p| p.outputs_lost),
        };
        let open = transition.next_poll_at_ms.map(|due| (due, 0));
        tables.jobs.insert(job, Stored { state, open });
        Ok(ApplyResult {
            outcome,
            from,
            to: Some(event.status),
            write_requests: 1,
        })
    }

    async fn correct(&self, event: &JobEvent, expected_transitions: u64) -> Result<bool, PortError> {
        let now = self.clock.now();
        let now_text = rfc3339(now);
        let mut tables = self.tables();
        let job = key(&event.source, &event.job_id);
        let Some(stored) = tables.jobs.get(&job) else {
            return Ok(false);
        };
        let replayed = tables
            .timelines
            .get(&job)
            .is_some_and(|t| t.contains_key(&event.event_id));
        if stored.state.transitions != expected_transitions || replayed {
            return Ok(false);
        }
        let previous = stored.state.clone();
        let transition = Transition::of(event, unix_ms(now), self.stale_after);
        let state = JobState {
            fields: transition.fields,
            updated_at: now_text.clone(),
            provider_time: event.provider_time.map(rfc3339),
            transitions: previous.transitions + 1,
            last_event_id: Some(event.event_id.clone()),
            // An ended job keeps who ended it first.
            terminal_origin: transition
                .terminal_origin
                .and(previous.terminal_origin.or(transition.terminal_origin)),
            abandoned_at: None,
            // The corrected job's outputs are kept again, as it says them now.
            kept_outputs: None,
            outputs_lost: None,
            ..previous
        };
        let open = transition.next_poll_at_ms.map(|due| (due, 0));
        tables.jobs.insert(job.clone(), Stored { state, open });
        tables.timelines.entry(job).or_default().insert(
            event.event_id.clone(),
            timeline_entry(event, Outcome::Applied, &now_text),
        );
        Ok(true)
    }

    async fn record_kept_outputs(
        &self,
        source: &str,
        job_id: &str,
        output_url: &str,
        kept: &[KeptOutput],
    ) -> Result<bool, PortError> {
        let now_text = rfc3339(self.clock.now());
        let mut tables = self.tables();
        let Some(stored) = tables.jobs.get_mut(&key(source, job_id)) else {
            return Ok(false);
        };
        let state = &mut stored.state;
        if !keepable(state, output_url) {
            return Ok(false);
        }
        state.kept_outputs = Some(kept.to_vec());
        state.transitions += 1;
        state.last_event_id = Some(KEPT_OUTPUTS_EVENT_ID.to_owned());
        state.updated_at = now_text;
        Ok(true)
    }

    async fn record_outputs_lost(
        &self,
        source: &str,
        job_id: &str,
        output_url: &str,
        why: &str,
    ) -> Result<bool, PortError> {
        let mut tables = self.tables();
        let Some(stored) = tables.jobs.get_mut(&key(source, job_id)) else {
            return Ok(false);
        };
        let state = &mut stored.state;
        if !keepable(state, output_url) {
            return Ok(false);
        }
        state.outputs_lost = Some(why.to_owned());
        Ok(true)
    }

    async fn has_event(&self, source: &str, job_id: &str, event_id: &str) -> Result<bool, PortError> {
        Ok(self
            .tables()
            .timelines
            .get(&key(source, job_id))
            .is_some_and(|t| t.contains_key(event_id)))
    }

    async fn track(&self, source: &str, job_id: &str) -> Result<bool, PortError> {
        let now = self.clock.now();
        let now_text = rfc3339(now);
        let mut tables = self.tables();
        let job = key(source, job_id);
        if tables.jobs.contains_key(&job) {
            return Ok(false);
        }
        let state = JobState {
            source: source.to_owned(),
            job_id: job_id.to_owned(),
            fields: JobFields {
                status: JobStatus::Submitted,
                progress: None,
                output_url: None,
                error: None,
                result: None,
            },
            first_seen: now_text.clone(),
            updated_at: now_text,
            provider_time: None,
            transitions: 0,
            last_event_id: None,
            terminal_origin: None,
            abandoned_at: None,
            kept_outputs: None,
            outputs_lost: None,
        };
        let due = due_after_activity(unix_ms(now), self.stale_after);
        tables.jobs.insert(
            job,
            Stored {
                state,
                open: Some((due, 0)),
            },
        );
        Ok(true)
    }
}

#[async_trait]
impl JobActivity for InMemoryJobStore {
    async fn recent(
        &self,
        source: &str,
        below: Option<&Position>,
        since: Option<&str>,
        limit: usize,
    ) -> Result<SourceRead, PortError> {
        let mut jobs: Vec<JobSummary> = self
            .tables()
            .jobs
            .values()
            .filter(|stored| stored.state.source == source)
            .map(|stored| {
                let state = &stored.state;
                JobSummary {
                    source: state.source.clone(),
                    job_id: state.job_id.clone(),
                    status: state.fields.status,
                    progress: state.fields.progress,
                    first_seen: state.first_seen.clone(),
                    updated_at: state.updated_at.clone(),
                    transitions: state.transitions,
                    terminal_origin: state.terminal_origin,
                    abandoned_at: state.abandoned_at.clone(),
                    next_poll_at: stored.open.map(|(due, _)| due),
                    outputs_lost: state.outputs_lost.clone(),
                }
            })
            .filter(|job| below.is_none_or(|b| job.position() < *b))
            .filter(|job| since.is_none_or(|since| job.updated_at.as_str() >= since))
            .collect();
        jobs.sort_by_key(|job| std::cmp::Reverse(job.position()));
        let more = jobs.len() > limit;
        jobs.truncate(limit);
        let stopped_at = if more {
            jobs.last().map(JobSummary::position)
        } else {
            None
        };
        Ok(SourceRead { jobs, stopped_at })
    }

    async fn open_counts(&self, source: &str, overdue_before_ms: i64) -> Result<OpenCounts, PortError> {
        let tables = self.tables();
        let due: Vec<i64> = tables
            .jobs
            .iter()
            .filter(|((s, _), _)| s == source)
            .filter_map(|(_, stored)| stored.open.map(|(due, _)| due))
            .collect();
        Ok(OpenCounts {
            open: due.len() as u64,
            overdue: due.iter().filter(|&&d| d < overdue_before_ms).count() as u64,
        })
    }
}

#[async_trait]
impl JobQuery for InMemoryJobStore {
    async fn get(&self, source: &str, job_id: &str) -> Result<Option<JobState>, PortError> {
        Ok(self.tables().jobs.get(&key(source, job_id)).map(|s| s.state.clone()))
    }

    async fn timeline(&self, source: &str, job_id: &str) -> Result<Vec<TimelineEntry>, PortError> {
        let mut entries: Vec<TimelineEntry> = self
            .tables()
            .timelines
            .get(&key(source, job_id))
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default();
        entries.sort_by(|a, b| {
            a.received_at
                .cmp(&b.received_at)
                .then_with(|| a.event_id.cmp(&b.event_id))
        });
        Ok(entries)
    }

    async fn jobs_of(&self, source: &str, cursor: Option<&str>) -> Result<JobsPage, PortError> {
        const PAGE: usize = 2;
        let tables = self.tables();
        let mut ids: Vec<&String> = tables
            .jobs
            .keys()
            .filter(|(s, id)| s == source && cursor.is_none_or(|after| id.as_str() > after))
            .map(|(_, id)| id)
            .collect();
        ids.sort();
        let jobs: Vec<JobState> = ids
            .iter()
            .take(PAGE)
            .map(|id| tables.jobs[&key(source, id)].state.clone())
            .collect();
        let next = (ids.len() > PAGE)
            .then(|| jobs.last().map(|j| j.job_id.clone()))
            .flatten();
        Ok(JobsPage { jobs, next })
    }
}

#[async_trait]
impl OpenJobIndex for InMemoryJobStore {
    async fn due_open_jobs(&self, source: &str, now_ms: i64, limit: usize) -> Result<Vec<OpenJob>, PortError> {
        let tables = self.tables();
        let mut due: Vec<OpenJob> = tables
            .jobs
            .iter()
            .filter(|((s, _), _)| s == source)
            .filter_map(|(_, stored)| {
                let (next_poll_at_ms, poll_misses) = stored.open?;
                (next_poll_at_ms <= now_ms).then(|| OpenJob {
                    source: stored.state.source.clone(),
                    job_id: stored.state.job_id.clone(),
                    status: stored.state.fields.status,
                    next_poll_at_ms,
                    poll_misses,
                    first_seen_ms: time::OffsetDateTime::parse(
                        &stored.state.first_seen,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .ok()
                    .map(unix_ms),
                })
            })
            .collect();
        // Soonest due first, as the index sorts; ties in job order.
        due.sort_by(|a, b| {
            a.next_poll_at_ms
                .cmp(&b.next_poll_at_ms)
                .then_with(|| a.job_id.cmp(&b.job_id))
        });
        due.truncate(limit);
        Ok(due)
    }

    async fn reschedule(&self, job: &OpenJob, next_poll_at_ms: i64, misses: u32) -> Result<(), PortError> {
        let mut tables = self.tables();
        if let Some(stored) = tables.jobs.get_mut(&key(&job.source, &job.job_id)) {
            // Only if no event moved the job (and its due time) meanwhile.
            if matches!(stored.open, Some((due, _)) if due == job.next_poll_at_ms) {
                stored.open = Some((next_poll_at_ms, misses));
            }
        }
        Ok(())
    }

    async fn record_not_found(&self, source: &str, job_id: &str) -> Result<u32, PortError> {
        let now = rfc3339(self.clock.now());
        let mut tables = self.tables();
        let entry = tables
            .timelines
            .entry(key(source, job_id))
            .or_default()
            .entry(NOT_FOUND_EVENT_ID.to_owned())
            .or_insert_with(|| TimelineEntry {
                event_id: NOT_FOUND_EVENT_ID.to_owned(),
                outcome: Outcome::NotFound,
                kind: NOT_FOUND_KIND.to_owned(),
                origin: Origin::Poll,
                status: None,
                progress: None,
                received_at: now.clone(),
                provider_time: None,
                repeats: Some(0),
                last_received_at: None,
                archive: None,
            });
        let repeats = entry.repeats.unwrap_or(0) + 1;
        entry.repeats = Some(repeats);
        entry.last_received_at = Some(now);
        Ok(repeats)
    }

    async fn abandon(&self, job: &OpenJob, _reason: &str) -> Result<bool, PortError> {
        let now = rfc3339(self.clock.now());
        let mut tables = self.tables();
        let job_key = key(&job.source, &job.job_id);
        let Some(stored) = tables.jobs.get_mut(&job_key) else {
            return Ok(false);
        };
        if !matches!(stored.open, Some((due, _)) if due == job.next_poll_at_ms) {
            return Ok(false);
        }
        stored.open = None;
        stored.state.abandoned_at = Some(now.clone());
        tables.timelines.entry(job_key).or_default().insert(
            ABANDONED_EVENT_ID.to_owned(),
            TimelineEntry {
                event_id: ABANDONED_EVENT_ID.to_owned(),
                outcome: Outcome::Abandoned,
                kind: ABANDONED_KIND.to_owned(),
                origin: Origin::Poll,
                status: Some(job.status),
                progress: None,
                received_at: now,
                provider_time: None,
                repeats: None,
                last_received_at: None,
                archive: None,
            },
        );
        Ok(true)
    }

    async fn rate_limited_until(&self, source: &str) -> Result<Option<i64>, PortError> {
        Ok(self.tables().rate_limits.get(source).copied())
    }

    async fn record_rate_limit(&self, source: &str, until_ms: i64) -> Result<(), PortError> {
        self.tables().rate_limits.insert(source.to_owned(), until_ms);
        Ok(())
    }
}

/// A sources document held in memory: the fake beside the file and Secrets
/// Manager loaders.
#[derive(Debug, Clone)]
pub struct StaticSources(pub String);

#[async_trait]
impl SourcesLoader for StaticSources {
    async fn load(&self) -> Result<String, PortError> {
        Ok(self.0.clone())
    }

    fn location(&self) -> String {
        "a document in memory".into()
    }
}

/// One dead-lettered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub body: String,
    pub reason: String,
    pub source: Option<String>,
}

/// Dead letters kept in memory: the fake beside the SQS dead-letter queue.
#[derive(Debug, Default)]
pub struct InMemoryDeadLetters {
    letters: Mutex<Vec<DeadLetter>>,
}

impl InMemoryDeadLetters {
    pub fn letters(&self) -> Vec<DeadLetter> {
        self.letters.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl DeadLetters for InMemoryDeadLetters {
    async fn dead_letter(&self, body: &str, reason: &str, source: Option<&str>) -> Result<(), PortError> {
        self.letters.lock().unwrap_or_else(|p| p.into_inner()).push(DeadLetter {
            body: body.to_owned(),
            reason: reason.to_owned(),
            source: source.map(str::to_owned),
        });
        Ok(())
    }
}

/// Keep requests kept in memory: the fake beside the outputs queue. While
/// `refuse` is set, every request fails as a throttled SQS does.
#[derive(Debug, Default)]
pub struct InMemoryOutputRequests {
    pub requests: Mutex<Vec<KeepRequest>>,
    pub refuse: std::sync::atomic::AtomicBool,
}

impl InMemoryOutputRequests {
    pub fn taken(&self) -> Vec<KeepRequest> {
        self.requests.lock().expect("lock").clone()
    }
}

#[async_trait]
impl OutputRequests for InMemoryOutputRequests {
    async fn request(&self, request: &KeepRequest) -> Result<(), PortError> {
        if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(PortError::transient("sqs:SendMessage", "throttled"));
        }
        self.requests.lock().expect("lock").push(request.clone());
        Ok(())
    }
}

/// Segments kept in memory: the fake beside the S3 bucket. A put can be
/// made to fail, to see what a batch does when the bucket is unavailable.
#[derive(Debug, Default)]
pub struct InMemorySegments {
    objects: Mutex<HashMap<String, Vec<u8>>>,
    failing: std::sync::atomic::AtomicBool,
}

impl InMemorySegments {
    pub const BUCKET: &'static str = "memory";

    pub fn objects(&self) -> HashMap<String, Vec<u8>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every put from now on fails transiently (or succeeds again).
    pub fn fail_puts(&self, failing: bool) {
        self.failing.store(failing, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait]
impl ArchiveSegments for InMemorySegments {
    fn bucket(&self) -> &str {
        Self::BUCKET
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), PortError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(PortError::transient("s3:PutObject", "service unavailable"));
        }
        self.objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned(), bytes);
        Ok(())
    }

    async fn read(&self, at: &SegmentRef) -> Result<Vec<u8>, PortError> {
        let objects = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        let object = objects
            .get(&at.key)
            .filter(|_| at.bucket == Self::BUCKET)
            .ok_or_else(|| PortError::permanent("s3:GetObject", format!("no object {}", at.to_uri())))?;
        let range = usize::try_from(at.offset)
            .ok()
            .zip(usize::try_from(at.offset + at.len).ok());
        range
            .and_then(|(start, end)| object.get(start..end))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| PortError::permanent("s3:GetObject", format!("{} is out of range", at.to_uri())))
    }
}

/// A provider API that answers from a script: the fake beside the HTTP
/// poller. Each job's answers come in turn and the last one repeats; a job
/// with no script is answered 404. Every poll is recorded.
#[derive(Debug, Default)]
pub struct ScriptedPoller {
    script: Mutex<HashMap<String, std::collections::VecDeque<Result<PollOutcome, PollError>>>>,
    polls: Mutex<Vec<(String, String)>>,
}

impl ScriptedPoller {
    /// Adds answers for `job_id`, after any it has already.
    pub fn answer(&self, job_id: &str, answers: impl IntoIterator<Item = Result<PollOutcome, PollError>>) {
        self.script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(job_id.to_owned())
            .or_default()
            .extend(answers);
    }

    /// (source, job id) of every poll so far, in order.
    pub fn polls(&self) -> Vec<(String, String)> {
        self.polls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl JobPoller for ScriptedPoller {
    async fn poll(&self, source: &SourceConfig, job_id: &str) -> Result<PollOutcome, PollError> {
        self.polls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((source.name.clone(), job_id.to_owned()));
        let mut script = self.script.lock().unwrap_or_else(|p| p.into_inner());
        let Some(answers) = script.get_mut(job_id) else {
            return Ok(PollOutcome::NotFound);
        };
        if answers.len() > 1 {
            return answers.pop_front().expect("not empty");
        }
        answers.front().cloned().unwrap_or(Ok(PollOutcome::NotFound))
    }
}

/// A key set publisher that serves one document, or is down, as a test sets
/// it; it counts the fetches it was asked for.
#[derive(Debug, Default)]
pub struct ScriptedKeySets {
    document: Mutex<Option<Vec<u8>>>,
    fetches: std::sync::atomic::AtomicUsize,
}

impl ScriptedKeySets {
    pub fn serving(document: &[u8]) -> Self {
        let sets = Self::default();
        sets.serve(Some(document));
        sets
    }
    /// `None`: every fetch fails, as a publisher that is down.
    pub fn serve(&self, document: Option<&[u8]>) {
        *self.document.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = document.map(<[u8]>::to_vec);
    }
    pub fn fetches(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[async_trait]
impl crate::ports::KeySetFetcher for ScriptedKeySets {
    async fn fetch(&self, _: &url::Url) -> Result<Vec<u8>, PortError> {
        self.fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let document = self
            .document
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        document.ok_or_else(|| PortError::transient("jwks:GET", "the publisher is down"))
    }
}
