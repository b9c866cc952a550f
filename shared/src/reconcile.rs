//! Reconciliation: find open jobs that went quiet, ask the provider, and
//! apply its answer through the same idempotent, monotonic path as webhooks.
//! Jobs whose webhooks arrive are never polled.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::clock::{unix_ms, Clock};
use crate::domain::job::{JobStatus, Outcome};
use crate::domain::provider::job_event_from_poll;
use crate::domain::sources::{SourceConfig, Sources};
use crate::outcomes::{self, PollRecord};
use crate::ports::{JobPoller, JobStore, OpenJob, OpenJobIndex, PollOutcome, PortError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileSettings {
    /// A job with no applied event for this long is a candidate.
    pub stale_after: Duration,
    /// A polled job is not polled again before this.
    pub poll_interval: Duration,
    pub max_polls_per_run: usize,
    pub poll_concurrency: usize,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            stale_after: Duration::from_secs(600),
            poll_interval: Duration::from_secs(300),
            max_polls_per_run: 500,
            poll_concurrency: 8,
        }
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
    pub unchanged: usize,
    pub not_found: usize,
    pub errors: usize,
    /// Candidates not polled because their source answered 429 this run.
    pub skipped_rate_limited: usize,
    pub rate_limited_sources: Vec<RateLimitedSource>,
    /// Sources with open jobs but no `api` to poll.
    pub sources_without_api: Vec<String>,
}

impl RunSummary {
    pub fn missed_webhooks_recovered(&self) -> usize {
        self.recovered_completed + self.recovered_failed
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobResult {
    Advanced(JobStatus),
    Unchanged,
    NotFound,
    Error,
    RateLimited,
    Skipped,
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

impl Reconciler {
    /// One run over every source that has an `api`.
    pub async fn run(&self, sources: &Sources) -> Result<RunSummary, PortError> {
        let now_ms = unix_ms(self.clock.now());
        let active_before = now_ms - self.settings.stale_after.as_millis() as i64;
        let polled_before = now_ms - self.settings.poll_interval.as_millis() as i64;
        let limit = self.settings.max_polls_per_run;

        let mut summary = RunSummary::default();
        let mut lists = Vec::new();
        for source in sources.iter() {
            let jobs = self
                .index
                .stale_open_jobs(&source.name, active_before, polled_before, limit)
                .await?;
            if source.api.is_none() {
                if !jobs.is_empty() {
                    tracing::warn!(source = %source.name, open = jobs.len(), "stale jobs, but the source has no api to poll");
                    summary.sources_without_api.push(source.name.clone());
                }
                continue;
            }
            lists.push(jobs);
        }
        let candidates = round_robin(lists, limit);
        summary.candidates = candidates.len();

        let rate_limited: Mutex<BTreeMap<String, Option<Duration>>> = Mutex::new(BTreeMap::new());
        let limited = &rate_limited;
        let results: Vec<JobResult> = stream::iter(0..candidates.len())
            .map(|i| {
                let job = &candidates[i];
                let source = sources.get(&job.source).expect("candidates come from known sources");
                async move {
                    let result = self.reconcile_one(source, job, limited).await;
                    let record = match result {
                        JobResult::Advanced(status) => Some(PollRecord::Advanced {
                            terminal: status.is_terminal(),
                        }),
                        JobResult::Unchanged => Some(PollRecord::Unchanged),
                        JobResult::NotFound => Some(PollRecord::NotFound),
                        JobResult::Error => Some(PollRecord::Error),
                        JobResult::RateLimited => Some(PollRecord::RateLimited),
                        JobResult::Skipped => None,
                    };
                    if let Some(record) = record {
                        outcomes::record_poll(&source.name, &job.job_id, record);
                    }
                    result
                }
            })
            .buffer_unordered(self.settings.poll_concurrency.max(1))
            .collect()
            .await;

        for result in results {
            match result {
                JobResult::Advanced(status) => {
                    summary.polled += 1;
                    summary.advanced += 1;
                    match status {
                        JobStatus::Completed => summary.recovered_completed += 1,
                        JobStatus::Failed => summary.recovered_failed += 1,
                        _ => {}
                    }
                }
                JobResult::Unchanged => {
                    summary.polled += 1;
                    summary.unchanged += 1;
                }
                JobResult::NotFound => {
                    summary.polled += 1;
                    summary.not_found += 1;
                }
                JobResult::Error => {
                    summary.polled += 1;
                    summary.errors += 1;
                }
                JobResult::RateLimited => summary.polled += 1,
                JobResult::Skipped => summary.skipped_rate_limited += 1,
            }
        }
        summary.rate_limited_sources = rate_limited
            .into_inner()
            .expect("lock")
            .into_iter()
            .map(|(source, after)| RateLimitedSource {
                source,
                retry_after_secs: after.map(|d| d.as_secs()),
            })
            .collect();
        outcomes::record_reconcile_run(&summary);
        Ok(summary)
    }

    async fn reconcile_one(
        &self,
        source: &SourceConfig,
        job: &OpenJob,
        rate_limited: &Mutex<BTreeMap<String, Option<Duration>>>,
    ) -> JobResult {
        if rate_limited.lock().expect("lock").contains_key(&source.name) {
            return JobResult::Skipped;
        }
        let answer = match self.poller.poll(source, &job.job_id).await {
            Ok(PollOutcome::Found(answer)) => answer,
            Ok(PollOutcome::NotFound) => {
                tracing::warn!(source = %source.name, job_id = %job.job_id, "provider does not know the job");
                return match self.record(source, job, true).await {
                    Ok(()) => JobResult::NotFound,
                    Err(()) => JobResult::Error,
                };
            }
            Ok(PollOutcome::RateLimited { retry_after }) => {
                let mut limited = rate_limited.lock().expect("lock");
                if !limited.contains_key(&source.name) {
                    tracing::warn!(
                        source = %source.name,
                        retry_after_secs = retry_after.map(|d| d.as_secs()),
                        "provider rate-limited polling; no more polls for this source in this run"
                    );
                    limited.insert(source.name.clone(), retry_after);
                }
                return JobResult::RateLimited;
            }
            Err(error) => {
                tracing::warn!(source = %source.name, job_id = %job.job_id, %error, "poll failed");
                return JobResult::Error;
            }
        };
        let event = job_event_from_poll(&source.name, &job.job_id, &answer);
        let applied = match self.store.apply(&event).await {
            Ok(applied) => applied,
            Err(error) => {
                tracing::error!(source = %source.name, job_id = %job.job_id, %error, "applying a poll answer failed");
                return JobResult::Error;
            }
        };
        outcomes::record_apply(&event, &applied);
        if self.record(source, job, false).await.is_err() {
            return JobResult::Error;
        }
        if applied.outcome == Outcome::Applied {
            JobResult::Advanced(event.status)
        } else {
            JobResult::Unchanged
        }
    }

    /// Notes the poll (and a 404 in the timeline). Errors are logged here.
    async fn record(&self, source: &SourceConfig, job: &OpenJob, not_found: bool) -> Result<(), ()> {
        let result = async {
            if not_found {
                self.index.record_not_found(&source.name, &job.job_id).await?;
            }
            self.index.record_poll(&source.name, &job.job_id).await
        }
        .await;
        result.map_err(|error| {
            tracing::error!(source = %source.name, job_id = %job.job_id, %error, "recording a poll failed");
        })
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
            last_activity_ms: 0,
        }
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
}
