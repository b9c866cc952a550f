//! Provider profiles: how one provider's payloads map onto job events.
//! A new provider is one new file implementing [`ProviderProfile`], plus a
//! line in [`profile`].

mod assemblyai;
mod cloudflare_stream;
mod deepgram;
mod elevenlabs;
mod fal;
pub(crate) mod generic;
mod luma;
mod mux;
mod openai;
mod opusclip;
mod replicate;
mod runpod;

use serde_json::{Map, Value};
use time::OffsetDateTime;

pub use assemblyai::AssemblyAi;
pub use cloudflare_stream::CloudflareStream;
pub use deepgram::Deepgram;
pub use elevenlabs::ElevenLabs;
pub use fal::Fal;
pub use generic::Generic;
pub use luma::Luma;
pub use mux::Mux;
pub use openai::OpenAi;
pub use opusclip::OpusClip;
pub use replicate::Replicate;
pub use runpod::RunPod;

use super::digest::sha256_hex;
use super::job::{JobEvent, Origin};

use super::job::JobStatus;

/// A webhook body, understood: what a profile reads before the envelope's
/// identity is known; `fetch` marks one whose state must still be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookPayload {
    /// The body's own event id, if it carries one.
    pub id: Option<String>,
    pub job_id: String,
    pub kind: String,
    pub status: JobStatus,
    pub progress: Option<u8>,
    pub output_url: Option<String>,
    pub error: Option<String>,
    /// JSON object text of at most [`MAX_RESULT_BYTES`].
    pub result: Option<String>,
    pub provider_time: Option<OffsetDateTime>,
    /// A thin event: the body names the job, and `status` is only what it
    /// announces; the state itself is read from the provider's API.
    pub fetch: bool,
}

/// A body that cannot be turned into an event. Retrying will not help.
/// Messages name fields, never quote values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

/// A `GET /jobs/{id}` answer, understood: what the provider says now, with
/// no event id or origin yet ([`job_event_from_poll`] gives it both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollAnswer {
    pub status: JobStatus,
    pub progress: Option<u8>,
    pub output_url: Option<String>,
    pub error: Option<String>,
    /// JSON object text of at most [`MAX_RESULT_BYTES`].
    pub result: Option<String>,
    pub updated_at: Option<OffsetDateTime>,
}

impl PollAnswer {
    /// An answer that says only `status` (an end without a result, or a
    /// state still moving).
    pub fn bare_ended(status: JobStatus) -> Self {
        Self {
            status,
            progress: None,
            output_url: None,
            error: None,
            result: None,
            updated_at: None,
        }
    }
}

#[cfg(any(test, feature = "test-util"))]
impl PollAnswer {
    /// An answer that says only `status` and `progress`, for tests.
    pub fn bare(status: JobStatus, progress: Option<u8>) -> Self {
        Self {
            status,
            progress,
            output_url: None,
            error: None,
            result: None,
            updated_at: None,
        }
    }
}

/// The most a job's `result` takes, serialized: it says where the rest of
/// a result is, never holds it (no transcripts, no logs).
pub const MAX_RESULT_BYTES: usize = 8 * 1024;

/// `fields` as a `result`: None when empty. Over [`MAX_RESULT_BYTES`], the
/// largest fields are dropped and named in `"omitted"` until it fits.
pub fn bounded_result(mut fields: Map<String, Value>) -> Option<String> {
    fields.retain(|_, v| !v.is_null());
    if fields.is_empty() {
        return None;
    }
    let mut omitted: Vec<String> = Vec::new();
    loop {
        let mut doc = fields.clone();
        if !omitted.is_empty() {
            doc.insert("omitted".into(), Value::from(omitted.clone()));
        }
        let text = Value::Object(doc).to_string();
        if text.len() <= MAX_RESULT_BYTES {
            return Some(text);
        }
        let largest = fields
            .iter()
            .max_by_key(|(_, v)| v.to_string().len())
            .map(|(k, _)| k.clone())?;
        fields.remove(&largest);
        omitted.push(largest);
    }
}

/// One request to the provider's API, under the source's `api.base_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    /// Path segments, each escaped as one segment.
    pub path: Vec<String>,
    pub query: Vec<(&'static str, String)>,
}

impl ApiRequest {
    pub fn path(segments: &[&str]) -> Self {
        Self {
            path: segments.iter().map(|s| (*s).to_owned()).collect(),
            query: Vec::new(),
        }
    }
}

/// How a provider's API is reached, for polling and for thin events.
#[derive(Debug, Clone, Copy)]
pub struct ApiDefaults {
    /// The provider's public API, used when a source gives no `api.base_url`.
    pub base_url: Option<&'static str>,
    /// Polls of one source per reconciler run when the source does not say
    /// (`api.max_polls_per_run`): a rate-limited API's budget.
    pub max_polls_per_run: Option<usize>,
    /// The largest answer read.
    pub max_answer_bytes: usize,
}

/// A job status is a few hundred bytes.
const DEFAULT_MAX_ANSWER_BYTES: usize = 1 << 20;

pub trait ProviderProfile: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    /// Why a well-formed delivery carries no job event (an event type that
    /// is about something else), if it does not: it is acknowledged and
    /// counted, never dead-lettered.
    fn not_a_job_event(&self, _body: &[u8]) -> Option<String> {
        None
    }
    fn parse_webhook(&self, body: &[u8]) -> Result<WebhookPayload, PayloadError>;
    /// The request that reads the job; an error if `job_id` is not one this
    /// provider's API can be asked about.
    fn poll_request(&self, job_id: &str) -> Result<ApiRequest, PayloadError>;
    fn parse_poll(&self, body: &[u8]) -> Result<PollAnswer, PayloadError>;
    /// A second request some answers need (a finished project's clips).
    fn follow_up(&self, _job_id: &str, _answer: &PollAnswer) -> Option<ApiRequest> {
        None
    }
    /// The answer completed with the follow-up's.
    fn parse_follow_up(&self, _job_id: &str, answer: PollAnswer, _body: &[u8]) -> Result<PollAnswer, PayloadError> {
        Ok(answer)
    }
    /// The header the source's `api.token` is sent in.
    fn auth_header(&self) -> &'static str {
        "authorization"
    }
    /// The value of [`Self::auth_header`] for the source's `api.token`.
    fn authorization(&self, token: &str) -> String {
        format!("Bearer {token}")
    }
    /// How long the provider keeps a job's output files after the job
    /// ends, where it deletes them; None where they stay (a hosted asset, a
    /// transcript kept until deleted) or the profile has no output URL.
    fn output_retention(&self) -> Option<std::time::Duration> {
        None
    }
    fn api_defaults(&self) -> ApiDefaults {
        ApiDefaults {
            base_url: None,
            max_polls_per_run: None,
            max_answer_bytes: DEFAULT_MAX_ANSWER_BYTES,
        }
    }
}

/// Every profile, by the name a source's `provider` gives.
pub const PROFILES: &[&dyn ProviderProfile] = &[
    &Generic,
    &OpusClip,
    &Replicate,
    &OpenAi,
    &Mux,
    &AssemblyAi,
    &RunPod,
    &Fal,
    &CloudflareStream,
    &Luma,
    &Deepgram,
    &ElevenLabs,
];

/// The names a source's `provider` may give, in registration order.
pub fn names() -> Vec<&'static str> {
    PROFILES.iter().map(|p| p.name()).collect()
}

/// The profile registered under `name`, if any.
pub fn profile(name: &str) -> Option<&'static dyn ProviderProfile> {
    PROFILES.iter().copied().find(|p| p.name() == name)
}

/// A poll answer as a job event. Its id is derived from the job, status and
/// progress, so polling the same state twice is a duplicate, not a new event.
pub fn job_event_from_poll(source: &str, job_id: &str, answer: &PollAnswer) -> JobEvent {
    let progress = answer.progress.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
    let identity = format!("{source}\n{job_id}\n{}\n{progress}", answer.status);
    JobEvent {
        event_id: format!("poll-{}", &sha256_hex(identity.as_bytes())[..32]),
        source: source.to_owned(),
        job_id: job_id.to_owned(),
        kind: format!("poll.{}", answer.status),
        origin: Origin::Poll,
        status: answer.status,
        progress: answer.progress,
        output_url: answer.output_url.clone(),
        error: answer.error.clone(),
        result: answer.result.clone(),
        provider_time: answer.updated_at,
        archive: None,
    }
}

/// An unsigned delivery's event: what the provider's API answered when the
/// delivery said "look now", under the poll's identity (so a second trigger
/// for the same state, or the reconciler's poll of it, is a duplicate), with
/// the webhook's origin, since a delivery set it off. Nothing of the
/// delivery's body is in it but the job id it named.
pub fn triggered_event(source: &str, job_id: &str, answer: &PollAnswer) -> JobEvent {
    JobEvent {
        kind: format!("trigger.{}", answer.status),
        origin: Origin::Webhook,
        ..job_event_from_poll(source, job_id, answer)
    }
}

/// A thin webhook's event with the state its provider's API answered: the
/// delivery keeps its identity and origin. None when the answer is behind
/// what the webhook announced (the API has not caught up; ask again later).
pub fn thin_event_with_state(event: &JobEvent, answer: &PollAnswer) -> Option<JobEvent> {
    if answer.status.rank() < event.status.rank() {
        return None;
    }
    Some(JobEvent {
        status: answer.status,
        progress: answer.progress,
        output_url: answer.output_url.clone(),
        error: answer.error.clone(),
        result: answer.result.clone(),
        provider_time: answer.updated_at.or(event.provider_time),
        ..event.clone()
    })
}

/// A documented payload from `events/providers/<provider>/`, for tests.
#[cfg(test)]
pub(crate) fn fixture(provider: &str, name: &str) -> Vec<u8> {
    let path = format!("{}/../events/providers/{provider}/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every string in `value`, one at a time, with a control character
    /// appended: each a copy of the whole document.
    fn with_each_string_tainted(value: &Value) -> Vec<Value> {
        match value {
            Value::String(s) => vec![Value::String(format!("{s}\u{7}"))],
            Value::Array(items) => (0..items.len())
                .flat_map(|i| {
                    with_each_string_tainted(&items[i])
                        .into_iter()
                        .map(move |tainted| (i, tainted))
                })
                .map(|(i, tainted)| {
                    let mut copy = items.clone();
                    copy[i] = tainted;
                    Value::Array(copy)
                })
                .collect(),
            Value::Object(fields) => fields
                .iter()
                .flat_map(|(k, v)| with_each_string_tainted(v).into_iter().map(move |tainted| (k, tainted)))
                .map(|(k, tainted)| {
                    let mut copy = fields.clone();
                    copy.insert(k.clone(), tainted);
                    Value::Object(copy)
                })
                .collect(),
            _ => vec![],
        }
    }

    /// Ids become storage keys and log fields: no profile may let a control
    /// character through in an event id or a job id, whichever field of its
    /// documented webhooks carries it.
    #[test]
    fn no_profile_takes_an_id_with_a_control_character() {
        let root = format!("{}/../events/providers", env!("CARGO_MANIFEST_DIR"));
        let mut checked = 0;
        for profile in PROFILES {
            let Ok(dir) = std::fs::read_dir(format!("{root}/{}", profile.name())) else {
                continue;
            };
            for entry in dir {
                let path = entry.expect("entry").path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
                if !name.starts_with("webhook-") {
                    continue;
                }
                let body: Value = serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("JSON");
                if profile.parse_webhook(body.to_string().as_bytes()).is_err() {
                    continue;
                }
                for tainted in with_each_string_tainted(&body) {
                    if let Ok(payload) = profile.parse_webhook(tainted.to_string().as_bytes()) {
                        let ids = [payload.id.as_deref().unwrap_or_default(), payload.job_id.as_str()];
                        assert!(
                            ids.iter().all(|id| !id.chars().any(char::is_control)),
                            "{} {name}: an id with a control character was accepted",
                            profile.name()
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 50, "only {checked} tainted documents parsed");
    }

    #[test]
    fn each_profile_name_finds_that_profile_and_no_name_is_taken_twice() {
        let names = names();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert_eq!(
            names,
            [
                "generic",
                "opusclip",
                "replicate",
                "openai",
                "mux",
                "assemblyai",
                "runpod",
                "fal",
                "cloudflare-stream",
                "luma",
                "deepgram",
                "elevenlabs"
            ]
        );
        assert!(names.iter().all(|n| profile(n).is_some_and(|p| p.name() == *n)));
        assert!(profile("stripe").is_none());
    }

    #[test]
    fn a_result_over_the_bound_drops_its_largest_fields_and_names_them() {
        let mut fields = Map::new();
        fields.insert("id".into(), Value::from("p1"));
        fields.insert("output".into(), Value::from("x".repeat(MAX_RESULT_BYTES)));
        fields.insert("none".into(), Value::Null);
        let text = bounded_result(fields).expect("result");
        assert!(text.len() <= MAX_RESULT_BYTES);
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v, serde_json::json!({"id": "p1", "omitted": ["output"]}));
        assert_eq!(bounded_result(Map::new()), None);
    }

    #[test]
    fn a_thin_event_takes_the_fetched_state_unless_it_is_behind_the_announcement() {
        let event = JobEvent {
            event_id: "wh_1".into(),
            source: "oai".into(),
            job_id: "batch_1".into(),
            kind: "batch.completed".into(),
            origin: Origin::Webhook,
            status: JobStatus::Completed,
            progress: None,
            output_url: None,
            error: None,
            result: None,
            provider_time: None,
            archive: None,
        };
        let updated = time::OffsetDateTime::from_unix_timestamp(1_778_673_605).expect("in range");
        let answer = |status| PollAnswer {
            status,
            progress: Some(100),
            output_url: Some("https://cdn.example/out".into()),
            error: Some("partial".into()),
            result: Some(r#"{"output_file_id":"file-1"}"#.into()),
            updated_at: Some(updated),
        };
        let applied = thin_event_with_state(&event, &answer(JobStatus::Completed)).expect("caught up");
        assert_eq!((applied.event_id.as_str(), applied.origin), ("wh_1", Origin::Webhook));
        assert_eq!(applied.result.as_deref(), Some(r#"{"output_file_id":"file-1"}"#));
        assert_eq!(applied.progress, Some(100));
        assert_eq!(applied.output_url.as_deref(), Some("https://cdn.example/out"));
        assert_eq!(applied.error.as_deref(), Some("partial"));
        assert_eq!(applied.provider_time, Some(updated));
        assert_eq!(thin_event_with_state(&event, &answer(JobStatus::Processing)), None);
        // The API is the truth when it has ended the job otherwise.
        let failed = thin_event_with_state(&event, &answer(JobStatus::Failed)).expect("ended");
        assert_eq!(failed.status, JobStatus::Failed);
    }

    fn answer(status: JobStatus, progress: Option<u8>) -> PollAnswer {
        PollAnswer::bare(status, progress)
    }

    /// The poll's event id is its dedupe key: the same state polled twice is
    /// one event, a change in status or progress a new one.
    #[test]
    fn a_poll_event_s_id_is_fixed_by_source_job_status_and_progress() {
        let id = |source, job, status, progress| job_event_from_poll(source, job, &answer(status, progress)).event_id;
        let first = id("s", "j", JobStatus::Processing, Some(40));
        assert_eq!(first, id("s", "j", JobStatus::Processing, Some(40)));
        assert!(
            first.starts_with("poll-") && first.len() == "poll-".len() + 32,
            "{first}"
        );
        for other in [
            id("s", "j", JobStatus::Processing, Some(41)),
            id("s", "j", JobStatus::Processing, None),
            id("s", "j", JobStatus::Completed, Some(40)),
            id("s", "k", JobStatus::Processing, Some(40)),
            id("t", "j", JobStatus::Processing, Some(40)),
        ] {
            assert_ne!(first, other);
        }
        let event = job_event_from_poll("s", "j", &answer(JobStatus::Completed, None));
        assert_eq!((event.kind.as_str(), event.origin), ("poll.completed", Origin::Poll));
    }

    #[test]
    fn a_result_of_exactly_8_kib_is_kept_whole() {
        let overhead = r#"{"k":""}"#.len();
        let mut fields = Map::new();
        fields.insert("k".into(), Value::from("x".repeat(8 * 1024 - overhead)));
        let text = bounded_result(fields).expect("result");
        assert_eq!(text.len(), 8 * 1024);
        assert!(!text.contains("omitted"));
    }

    /// What a profile gets when it does not say otherwise (Generic says nothing).
    #[test]
    fn a_profile_s_defaults_are_bearer_auth_no_follow_up_and_a_one_mib_answer() {
        let generic = profile("generic").expect("generic");
        assert_eq!(generic.authorization("tok"), "Bearer tok");
        assert_eq!(generic.auth_header(), "authorization");
        assert_eq!(generic.not_a_job_event(b"{}"), None);
        let defaults = generic.api_defaults();
        assert_eq!(defaults.max_answer_bytes, 1 << 20);
        assert_eq!((defaults.base_url, defaults.max_polls_per_run), (None, None));
        let done = answer(JobStatus::Completed, None);
        assert_eq!(generic.follow_up("j", &done), None);
        assert_eq!(generic.parse_follow_up("j", done.clone(), b"ignored"), Ok(done));
    }
}
