//! Reconciliation: find open jobs that are due for a poll, ask the provider,
//! and apply its answer through the same idempotent, monotonic path as
//! webhooks. Jobs whose webhooks arrive are never polled.
//!
//! Every applied event makes a job due `stale_after` later (the store sets
//! it). A poll that changes nothing, or a 404, pushes the job back by
//! `poll_interval`, doubling with each such poll in a row up to
//! `max_poll_interval`, so jobs the provider never knew cannot crowd out
//! jobs that just went quiet. After `abandon_after_not_found` 404s, or once
//! a fruitless poll finds the job open for longer than `abandon_after`, the
//! job is abandoned: no longer polled, with an `abandoned` timeline entry.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use serde::Serialize;
use tokio::time::Instant;

use jobhook::clock::{rfc3339, unix_ms, Clock};
use jobhook::domain::archive::{ArchiveLocation, ArchiveRecord};
use jobhook::domain::job::{JobStatus, Outcome};
use jobhook::domain::provider::job_event_from_poll;
use jobhook::domain::sources::{SourceConfig, Sources};
use jobhook::outcomes;
use jobhook::ports::{ErrorKind, JobPoller, JobStore, OpenJob, OpenJobIndex, PollOutcome, PortError};
use jobhook::telemetry::{count, names};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileSettings {
    /// The wait after the first poll that changes nothing (or a 404); it
    /// doubles with each such poll in a row.
    pub poll_interval: Duration,
    /// The longest wait between polls of a job.
    pub max_poll_interval: Duration,
    pub max_polls_per_run: usize,
    pub poll_concurrency: usize,
    /// A job the provider answered 404 this many times is abandoned.
    pub abandon_after_not_found: u32,
    /// A job still open this long after it was first seen is abandoned at
    /// its next poll that changes nothing.
    pub abandon_after: Duration,
    /// No poll starts unless this much time is left before the deadline: one
    /// poll's timeout and the writes after it.
    pub reserve: Duration,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(300),
            max_poll_interval: Duration::from_secs(3600),
            max_polls_per_run: 300,
            poll_concurrency: 8,
            abandon_after_not_found: 5,
            abandon_after: Duration::from_secs(7 * 86_400),
            reserve: Duration::from_secs(7),
        }
    }
}

impl ReconcileSettings {
    /// The wait before the next poll of a job after `misses` polls in a row
    /// that changed nothing (at least 1).
    pub fn backoff(&self, misses: u32) -> Duration {
        jobhook::domain::schedule::doubling(self.poll_interval, self.max_poll_interval, misses)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateLimitedSource {
    pub source: String,
    pub retry_after_secs: Option<u64>,
}

/// What one run did. "Recovered" jobs reached a terminal state through
/// polling: their terminal webhook was missed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    pub candidates: usize,
    pub polled: usize,
    pub advanced: usize,
    pub recovered_completed: usize,
    pub recovered_failed: usize,
    pub recovered_canceled: usize,
    pub unchanged: usize,
    pub not_found: usize,
    /// Jobs given up on this run.
    pub abandoned: usize,
    /// Polls that failed at the provider (timeout, 5xx, network, bad answer).
    pub errors: usize,
    /// Candidates whose bookkeeping failed in DynamoDB (not the provider's fault).
    pub store_errors: usize,
    /// Candidates not polled because their source answered 429.
    pub skipped_rate_limited: usize,
    /// Candidates left for the next run because the deadline was near.
    pub deferred: usize,
    pub rate_limited_sources: Vec<RateLimitedSource>,
    /// Sources with no `api`: never queried.
    pub sources_without_api: Vec<String>,
    /// Sources whose due jobs could not be read this run; the others went on.
    pub sources_failed: Vec<String>,
}

impl RunSummary {
    pub fn missed_webhooks_recovered(&self) -> usize {
        self.recovered_completed + self.recovered_failed + self.recovered_canceled
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobResult {
    Advanced(JobStatus),
    Unchanged,
    NotFound,
    Abandoned,
    ProviderError,
    StoreError,
    RateLimited,
    Skipped,
    Deferred,
}

#[derive(Debug)]
pub struct Reconciler {
    pub store: Arc<dyn JobStore>,
    pub index: Arc<dyn OpenJobIndex>,
    pub poller: Arc<dyn JobPoller>,
    pub clock: Arc<dyn Clock>,
    pub settings: ReconcileSettings,
}

/// Interleaves per-source lists so that one busy source cannot take the
/// whole run's budget.
fn round_robin(mut lists: Vec<Vec<OpenJob>>, limit: usize) -> Vec<OpenJob> {
    let mut out = Vec::new();
    let mut index = 0;
    while out.len() < limit && lists.iter().any(|l| index < l.len()) {
        for list in &mut lists {
            if let Some(job) = list.get(index) {
                out.push(job.clone());
            }
        }
        index += 1;
    }
    out.truncate(limit);
    out
}

type RateLimits = Mutex<BTreeMap<String, Option<Duration>>>;

/// What a source has for this run.
enum Due {
    Jobs(Vec<OpenJob>),
    /// Epoch ms the provider's `Retry-After` named.
    RateLimitedUntil(i64),
}

impl Reconciler {
    /// One run over every source that has an `api`, stopping in time for
    /// `deadline`. Fails only when the store itself is unusable (a systemic
    /// error); a source whose query fails is skipped and named.
    pub async fn run(&self, sources: &Sources, deadline: Instant) -> Result<RunSummary, PortError> {
        let now_ms = unix_ms(self.clock.now());
        let limit = self.settings.max_polls_per_run;
        let mut summary = RunSummary::default();
        let mut lists = Vec::new();
        for source in sources.iter() {
            let Some(api) = &source.api else {
                summary.sources_without_api.push(source.name.clone());
                continue;
            };
            // A rate-limited API's own budget, within the run's.
            let source_limit = api.max_polls_per_run.map_or(limit, |n| n.min(limit));
            match self.due_jobs(source, now_ms, source_limit).await {
                Ok(Due::Jobs(jobs)) => lists.push(jobs),
                Ok(Due::RateLimitedUntil(until)) => {
                    summary.rate_limited_sources.push(RateLimitedSource {
                        source: source.name.clone(),
                        retry_after_secs: Some(((until - now_ms).max(0) / 1000) as u64),
                    });
                }
                Err(error) if error.kind == ErrorKind::Systemic => return Err(error),
                Err(error) => {
                    tracing::error!(source = %source.name, %error, "could not read the source's due jobs; the other sources go on");
                    summary.sources_failed.push(source.name.clone());
                }
            }
        }
        let candidates = round_robin(lists, limit);
        summary.candidates = candidates.len();

        let rate_limited: RateLimits = Mutex::new(BTreeMap::new());
        let limited = &rate_limited;
        let results: Vec<JobResult> = stream::iter(0..candidates.len())
            .map(|i| {
                let job = &candidates[i];
                let source = sources.get(&job.source).expect("candidates come from known sources");
                async move {
                    let result = if Instant::now() + self.settings.reserve > deadline {
                        JobResult::Deferred
                    } else {
                        self.reconcile_one(source, job, limited).await
                    };
                    {
                        result.record(&source.name, &job.job_id);
                    }
                    result
                }
            })
            .buffer_unordered(self.settings.poll_concurrency.max(1))
            .collect()
            .await;

        for result in results {
            let polled = !matches!(result, JobResult::Skipped | JobResult::Deferred);
            summary.polled += usize::from(polled);
            match result {
                JobResult::Advanced(status) => {
                    summary.advanced += 1;
                    match status {
                        JobStatus::Completed => summary.recovered_completed += 1,
                        JobStatus::Failed => summary.recovered_failed += 1,
                        JobStatus::Canceled => summary.recovered_canceled += 1,
                        _ => {}
                    }
                }
                JobResult::Unchanged => summary.unchanged += 1,
                JobResult::NotFound => summary.not_found += 1,
                JobResult::Abandoned => summary.abandoned += 1,
                JobResult::ProviderError => summary.errors += 1,
                JobResult::StoreError => summary.store_errors += 1,
                JobResult::RateLimited => {}
                JobResult::Skipped => summary.skipped_rate_limited += 1,
                JobResult::Deferred => summary.deferred += 1,
            }
        }
        let this_run = rate_limited.into_inner().unwrap_or_else(|p| p.into_inner());
        summary
            .rate_limited_sources
            .extend(this_run.into_iter().map(|(source, after)| RateLimitedSource {
                source,
                retry_after_secs: after.map(|d| d.as_secs()),
            }));
        if summary.deferred > 0 {
            tracing::warn!(
                deferred = summary.deferred,
                "the run's deadline came first; the rest waits for the next run"
            );
        }
        summary.record();
        Ok(summary)
    }

    /// The source's due jobs, unless it asked (with `Retry-After`) not to
    /// be polled yet.
    async fn due_jobs(&self, source: &SourceConfig, now_ms: i64, limit: usize) -> Result<Due, PortError> {
        if let Some(until) = self
            .index
            .rate_limited_until(&source.name)
            .await?
            .filter(|until| *until > now_ms)
        {
            return Ok(Due::RateLimitedUntil(until));
        }
        self.index
            .due_open_jobs(&source.name, now_ms, limit)
            .await
            .map(Due::Jobs)
    }

    async fn reconcile_one(&self, source: &SourceConfig, job: &OpenJob, rate_limited: &RateLimits) -> JobResult {
        if rate_limited
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&source.name)
        {
            return JobResult::Skipped;
        }
        let answer = match self.poller.poll(source, &job.job_id).await {
            Ok(PollOutcome::Found(answer)) => answer,
            Ok(PollOutcome::NotFound) => {
                tracing::warn!(source = %source.name, job_id = %job.job_id, "provider does not know the job");
                let count = match self.index.record_not_found(&source.name, &job.job_id).await {
                    Ok(count) => count,
                    Err(error) => return self.store_error(job, "recording a 404", &error),
                };
                if count >= self.settings.abandon_after_not_found {
                    let reason = format!("the provider answered 404 {count} times");
                    return self.abandon(job, &reason).await;
                }
                return match self.after_fruitless_poll(source, job).await {
                    JobResult::Unchanged => JobResult::NotFound,
                    other => other,
                };
            }
            Ok(PollOutcome::RateLimited { retry_after }) => {
                return self.rate_limited(source, retry_after, rate_limited).await;
            }
            Err(error) => {
                tracing::warn!(source = %source.name, job_id = %job.job_id, %error, "poll failed");
                return JobResult::ProviderError;
            }
        };
        let mut event = job_event_from_poll(&source.name, &job.job_id, &answer);
        // An answer is bounded (its result at 8 KiB), so it is kept inline:
        // written only if the apply records a new event, free for a repeat.
        let record = ArchiveRecord::of_poll(&source.name, rfc3339(self.clock.now()), &answer);
        event.archive = Some(ArchiveLocation::Inline(record.encode()));
        let applied = match self.store.apply(&event).await {
            Ok(applied) => applied,
            Err(error) => return self.store_error(job, "applying a poll answer", &error),
        };
        outcomes::record_apply(&event, &applied);
        if applied.outcome == Outcome::Applied {
            // The apply made the job due again, `stale_after` from now.
            JobResult::Advanced(event.status)
        } else {
            self.after_fruitless_poll(source, job).await
        }
    }

    /// Pushes the job back, or gives up on it once it is too old.
    async fn after_fruitless_poll(&self, source: &SourceConfig, job: &OpenJob) -> JobResult {
        let now_ms = unix_ms(self.clock.now());
        let age_ms = job.first_seen_ms.map(|first| now_ms - first);
        if age_ms.is_some_and(|age| age > self.settings.abandon_after.as_millis() as i64) {
            let reason = format!(
                "still open after {} days",
                self.settings.abandon_after.as_secs() / 86_400
            );
            return self.abandon(job, &reason).await;
        }
        let misses = job.poll_misses + 1;
        // A source that keeps outputs is polled well inside its provider's
        // retention, so a missed completion is found while its output exists.
        let wait =
            jobhook::domain::schedule::within_retention(self.settings.backoff(misses), source.output_retention());
        let next = now_ms + wait.as_millis() as i64;
        match self.index.reschedule(job, next, misses).await {
            Ok(()) => JobResult::Unchanged,
            Err(error) => self.store_error(job, "rescheduling a poll", &error),
        }
    }

    async fn abandon(&self, job: &OpenJob, reason: &str) -> JobResult {
        match self.index.abandon(job, reason).await {
            Ok(true) => {
                record_abandoned(&job.source, &job.job_id, reason);
                JobResult::Abandoned
            }
            // An event moved it meanwhile: not abandoned, and already rescheduled.
            Ok(false) => JobResult::Unchanged,
            Err(error) => self.store_error(job, "abandoning a job", &error),
        }
    }

    async fn rate_limited(
        &self,
        source: &SourceConfig,
        retry_after: Option<Duration>,
        limits: &RateLimits,
    ) -> JobResult {
        let first = limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(source.name.clone(), retry_after)
            .is_none();
        if first {
            tracing::warn!(
                source = %source.name,
                retry_after_secs = retry_after.map(|d| d.as_secs()),
                "provider rate-limited polling; no more polls for this source until the time it names"
            );
            if let Some(after) = retry_after {
                let until = unix_ms(self.clock.now()) + after.as_millis() as i64;
                if let Err(error) = self.index.record_rate_limit(&source.name, until).await {
                    tracing::error!(source = %source.name, %error, "could not remember the provider's Retry-After");
                }
            }
        }
        JobResult::RateLimited
    }

    fn store_error(&self, job: &OpenJob, what: &str, error: &PortError) -> JobResult {
        tracing::error!(source = %job.source, job_id = %job.job_id, %error, "{what} failed");
        JobResult::StoreError
    }
}

impl JobResult {
    /// Counts one candidate's poll; a skipped or deferred one was not polled.
    fn record(self, source: &str, job_id: &str) {
        if matches!(self, Self::Skipped | Self::Deferred) {
            return;
        }
        count(names::JOBS_POLLED, source);
        match self {
            Self::Advanced(status) if status.is_terminal() => {
                count(names::MISSED_WEBHOOKS_RECOVERED, source);
                tracing::warn!(source, job_id, "missed webhook recovered by polling");
            }
            Self::ProviderError => count(names::PROVIDER_POLL_ERRORS, source),
            Self::StoreError => count(names::RECONCILER_STORE_ERRORS, source),
            Self::RateLimited => count(names::PROVIDER_RATE_LIMITED, source),
            _ => {}
        }
    }
}

/// A job the reconciler gave up on: no longer polled.
fn record_abandoned(source: &str, job_id: &str, reason: &str) {
    count(names::JOBS_ABANDONED, source);
    tracing::warn!(source, job_id, reason, "job abandoned: no longer polled");
}

impl RunSummary {
    /// Logs the run's summary line.
    fn record(&self) {
        tracing::info!(
            candidates = self.candidates,
            polled = self.polled,
            advanced = self.advanced,
            missed_webhooks_recovered = self.missed_webhooks_recovered(),
            recovered_completed = self.recovered_completed,
            recovered_failed = self.recovered_failed,
            recovered_canceled = self.recovered_canceled,
            unchanged = self.unchanged,
            not_found = self.not_found,
            abandoned = self.abandoned,
            errors = self.errors,
            store_errors = self.store_errors,
            skipped_rate_limited = self.skipped_rate_limited,
            deferred = self.deferred,
            sources_failed = ?self.sources_failed,
            rate_limited_sources = ?self.rate_limited_sources.iter().map(|r| r.source.as_str()).collect::<Vec<_>>(),
            "reconciler run finished"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(source: &str, id: usize) -> OpenJob {
        OpenJob {
            source: source.into(),
            job_id: id.to_string(),
            status: JobStatus::Processing,
            next_poll_at_ms: 0,
            poll_misses: 0,
            first_seen_ms: None,
        }
    }

    #[test]
    fn fruitless_polls_back_off_doubling_up_to_the_cap() {
        let settings = ReconcileSettings::default();
        let waits: Vec<u64> = (1..=6).map(|m| settings.backoff(m).as_secs()).collect();
        assert_eq!(waits, [300, 600, 1200, 2400, 3600, 3600]);
        assert_eq!(settings.backoff(1000).as_secs(), 3600);
    }

    #[test]
    fn round_robin_shares_the_budget_between_sources() {
        let big: Vec<OpenJob> = (0..10).map(|i| job("big", i)).collect();
        let small: Vec<OpenJob> = (0..2).map(|i| job("small", i)).collect();
        let picked = round_robin(vec![big, small], 5);
        let sources: Vec<&str> = picked.iter().map(|j| j.source.as_str()).collect();
        assert_eq!(sources, ["big", "small", "big", "small", "big"]);
        assert_eq!(round_robin(vec![vec![], vec![]], 5), vec![]);
    }

    /// The reconciler over the in-memory store and a scripted provider: its
    /// schedule, abandon and fairness rules without a table or a network.
    mod on_the_in_memory_store {
        use super::*;
        use jobhook::adapters::memory::{InMemoryJobStore, ScriptedPoller};
        use jobhook::clock::ManualClock;
        use jobhook::domain::provider::PollAnswer;
        use jobhook::ports::JobQuery;

        const T0: i64 = 1_778_673_600;

        struct Rig {
            store: Arc<InMemoryJobStore>,
            poller: Arc<ScriptedPoller>,
            clock: Arc<ManualClock>,
            reconciler: Reconciler,
        }

        fn rig(settings: ReconcileSettings) -> Rig {
            let clock = Arc::new(ManualClock::at_unix(T0));
            let store = Arc::new(InMemoryJobStore::new(clock.clone()).with_stale_after(Duration::from_secs(600)));
            let poller = Arc::new(ScriptedPoller::default());
            let reconciler = Reconciler {
                store: store.clone(),
                index: store.clone(),
                poller: poller.clone(),
                clock: clock.clone(),
                settings: ReconcileSettings {
                    reserve: Duration::ZERO,
                    ..settings
                },
            };
            Rig {
                store,
                poller,
                clock,
                reconciler,
            }
        }

        fn sources(names: &[&str]) -> Sources {
            let entries: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .map(|name| {
                    let source = serde_json::json!({"scheme": "github", "secrets": ["k"],
                        "api": {"base_url": "https://api.example.com", "token": "t"}});
                    ((*name).to_owned(), source)
                })
                .collect();
            Sources::parse(&serde_json::json!({ "sources": entries }).to_string()).expect("sources")
        }

        fn answer(status: JobStatus, progress: Option<u8>) -> PollAnswer {
            PollAnswer::bare(status, progress)
        }

        fn found(status: JobStatus) -> Result<PollOutcome, jobhook::ports::PollError> {
            Ok(PollOutcome::Found(answer(status, None)))
        }

        impl Rig {
            async fn run(&self, sources: &Sources) -> RunSummary {
                let deadline = Instant::now() + Duration::from_secs(60);
                self.reconciler.run(sources, deadline).await.expect("run")
            }

            /// When the job is next due, in seconds from T0; None once it left the index.
            fn due_in(&self, job_id: &str) -> Option<i64> {
                self.store
                    .open_jobs()
                    .into_iter()
                    .find(|((_, id), _)| id == job_id)
                    .map(|(_, due)| due / 1000 - T0)
            }

            fn advance_to(&self, secs_from_t0: i64) {
                let now = jobhook::clock::Clock::now_unix(&*self.clock);
                self.clock
                    .advance(Duration::from_secs((T0 + secs_from_t0 - now) as u64));
            }
        }

        #[tokio::test]
        async fn a_job_whose_polls_change_nothing_is_polled_less_and_less_often() {
            let rig = rig(ReconcileSettings::default());
            let sources = sources(&["acme"]);
            rig.store.track("acme", "job-1").await.expect("track");
            rig.poller.answer("job-1", [found(JobStatus::Processing)]);
            assert_eq!(rig.due_in("job-1"), Some(600), "first due stale_after its tracking");

            // The first poll moves it to processing: due stale_after again.
            rig.advance_to(600);
            assert_eq!(rig.run(&sources).await.advanced, 1);
            assert_eq!(rig.due_in("job-1"), Some(1_200));
            // Then each poll that changes nothing doubles the wait, to the cap.
            let mut gaps = Vec::new();
            for _ in 0..6 {
                let due = rig.due_in("job-1").expect("open");
                rig.advance_to(due);
                assert_eq!(rig.run(&sources).await.unchanged, 1);
                gaps.push(rig.due_in("job-1").expect("open") - due);
            }
            assert_eq!(gaps, [300, 600, 1_200, 2_400, 3_600, 3_600]);
            assert_eq!(rig.poller.polls().len(), 7);
        }

        #[tokio::test]
        async fn a_job_the_provider_never_knew_is_abandoned_and_a_webhook_reopens_it() {
            let rig = rig(ReconcileSettings::default());
            let sources = sources(&["acme"]);
            rig.store.track("acme", "ghost").await.expect("track");
            let mut abandoned = 0;
            for _ in 0..5 {
                let due = rig.due_in("ghost").expect("still polled");
                rig.advance_to(due);
                abandoned += rig.run(&sources).await.abandoned;
            }
            assert_eq!(abandoned, 1, "abandoned at the fifth 404");
            assert_eq!(rig.due_in("ghost"), None, "no longer polled");
            let state = rig.store.get("acme", "ghost").await.expect("get").expect("job");
            assert!(state.abandoned_at.is_some());
            let timeline = rig.store.timeline("acme", "ghost").await.expect("timeline");
            let outcomes: Vec<(Outcome, Option<u32>)> = timeline.iter().map(|e| (e.outcome, e.repeats)).collect();
            assert_eq!(outcomes, [(Outcome::NotFound, Some(5)), (Outcome::Abandoned, None)]);

            let event = job_event_from_poll("acme", "ghost", &answer(JobStatus::Processing, Some(10)));
            rig.store.apply(&event).await.expect("apply");
            assert!(rig.due_in("ghost").is_some(), "an applied event reopens it");
            let state = rig.store.get("acme", "ghost").await.expect("get").expect("job");
            assert_eq!(state.abandoned_at, None);
        }

        #[tokio::test]
        async fn a_busy_source_cannot_take_a_quiet_source_s_share_of_the_run() {
            let rig = rig(ReconcileSettings {
                max_polls_per_run: 4,
                ..ReconcileSettings::default()
            });
            let sources = sources(&["busy", "quiet"]);
            for i in 0..10 {
                rig.store.track("busy", &format!("b{i}")).await.expect("track");
            }
            for i in 0..2 {
                rig.store.track("quiet", &format!("q{i}")).await.expect("track");
            }
            rig.advance_to(600);
            let summary = rig.run(&sources).await;
            assert_eq!(summary.candidates, 4);
            let mut per_source = BTreeMap::new();
            for (source, _) in rig.poller.polls() {
                *per_source.entry(source).or_insert(0) += 1;
            }
            assert_eq!(
                per_source,
                BTreeMap::from([("busy".to_owned(), 2), ("quiet".to_owned(), 2)])
            );
        }

        #[tokio::test]
        async fn a_rate_limited_source_is_left_alone_until_the_time_it_named() {
            let rig = rig(ReconcileSettings {
                poll_concurrency: 1,
                ..ReconcileSettings::default()
            });
            let sources = sources(&["acme"]);
            for id in ["j1", "j2", "j3"] {
                rig.store.track("acme", id).await.expect("track");
            }
            // The first poll (j1's, the soonest due) is answered 429.
            let retry_after = Some(Duration::from_secs(120));
            rig.poller.answer(
                "j1",
                [
                    Ok(PollOutcome::RateLimited { retry_after }),
                    found(JobStatus::Completed),
                ],
            );
            for id in ["j2", "j3"] {
                rig.poller.answer(id, [found(JobStatus::Completed)]);
            }
            rig.advance_to(600);
            let first = rig.run(&sources).await;
            assert_eq!((first.polled, first.skipped_rate_limited), (1, 2), "{first:?}");
            assert_eq!(rig.poller.polls().len(), 1);

            rig.advance_to(660);
            let waiting = rig.run(&sources).await;
            assert_eq!(waiting.candidates, 0);
            assert_eq!(waiting.rate_limited_sources[0].retry_after_secs, Some(60));
            assert_eq!(rig.poller.polls().len(), 1, "not polled before the time it named");

            rig.advance_to(721);
            let after = rig.run(&sources).await;
            assert_eq!((after.polled, after.recovered_completed), (3, 3), "{after:?}");
            assert_eq!(rig.poller.polls().len(), 4);
        }
    }
}
