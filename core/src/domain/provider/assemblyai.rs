//! AssemblyAI (assemblyai.com/docs/deployment/webhooks and the OpenAPI spec,
//! AssemblyAI/assemblyai-api-spec): no signature, only a header and value
//! chosen per transcript request (jobhook's `header-token` scheme). The body
//! is `{"transcript_id": …, "status": "completed" | "error"}`, sent once the
//! transcript ends; the same URL may also get `{"status":
//! "redacted_audio_ready", …}`, which is not a job event. The error text is
//! not in the webhook, so an `error` delivery is thin: the transcript is
//! read from `GET /v2/transcript/{id}` (raw key in `authorization`, no
//! `Bearer`), which answers 200 with `status: "error"` and `error`.
//!
//! A transcript answer carries the whole text and every word's timing:
//! megabytes for long audio. It is read with a typed parser that skips those
//! fields, and its size bound is raised accordingly.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::generic::{err, id_string, json_object};
use super::{bounded_result, ApiDefaults, ApiRequest, PayloadError, PollAnswer, ProviderProfile, WebhookPayload};
use crate::domain::job::JobStatus;

#[derive(Debug, Clone, Copy, Default)]
pub struct AssemblyAi;

/// A transcript, with only the fields jobhook keeps; serde skips the rest
/// (`text`, `words`, `utterances`) without building them.
#[derive(Deserialize)]
struct Transcript {
    #[serde(default)]
    id: Option<String>,
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    audio_duration: Option<Value>,
    #[serde(default)]
    language_code: Option<String>,
}

fn result_of(transcript_id: Option<&str>, answer: Option<&Transcript>) -> Option<String> {
    let mut fields = Map::new();
    if let Some(id) = transcript_id {
        fields.insert("transcript_id".into(), Value::from(id));
    }
    if let Some(t) = answer {
        if let Some(d) = &t.audio_duration {
            fields.insert("audio_duration".into(), d.clone());
        }
        if let Some(l) = &t.language_code {
            fields.insert("language_code".into(), Value::from(l.as_str()));
        }
    }
    bounded_result(fields)
}

impl ProviderProfile for AssemblyAi {
    fn name(&self) -> &'static str {
        "assemblyai"
    }

    fn not_a_job_event(&self, body: &[u8]) -> Option<String> {
        let root = json_object(body, "body").ok()?;
        let status = root.get("status")?.as_str()?;
        (!root.contains_key("transcript_id") && status == "redacted_audio_ready")
            .then(|| "an AssemblyAI redacted_audio_ready notice is not about a transcript's status".to_owned())
    }

    fn parse_webhook(&self, body: &[u8]) -> Result<WebhookPayload, PayloadError> {
        let root = json_object(body, "body")?;
        // Not validated as a UUID: the docs' own example is not one.
        let job_id = id_string(root.get("transcript_id"), "transcript_id")?
            .ok_or_else(|| err("field \"transcript_id\" is required"))?;
        let (status, fetch) = match root.get("status").and_then(Value::as_str) {
            Some("completed") => (JobStatus::Completed, false),
            // The reason is only in the transcript.
            Some("error") => (JobStatus::Failed, true),
            _ => return Err(err("field \"status\" must be completed or error")),
        };
        Ok(WebhookPayload {
            id: None,
            kind: format!("transcript.{}", if fetch { "error" } else { "completed" }),
            status,
            progress: None,
            output_url: None,
            error: None,
            result: (status == JobStatus::Completed)
                .then(|| result_of(Some(&job_id), None))
                .flatten(),
            job_id,
            provider_time: None,
            fetch,
        })
    }

    fn poll_request(&self, job_id: &str) -> Result<ApiRequest, PayloadError> {
        Ok(ApiRequest::path(&["transcript", job_id]))
    }

    fn parse_poll(&self, body: &[u8]) -> Result<PollAnswer, PayloadError> {
        // serde's messages may quote the input: keep only the position.
        let t: Transcript = serde_json::from_slice(body).map_err(|e| {
            err(format!(
                "answer is not a transcript with a string status (line {} column {})",
                e.line(),
                e.column()
            ))
        })?;
        let status = match t.status.as_str() {
            "queued" => JobStatus::Submitted,
            "processing" => JobStatus::Processing,
            "completed" => JobStatus::Completed,
            "error" => JobStatus::Failed,
            _ => return Err(err("field \"status\" must be queued, processing, completed or error")),
        };
        Ok(PollAnswer {
            status,
            progress: None,
            output_url: None,
            error: (status == JobStatus::Failed).then(|| t.error.clone().unwrap_or_else(|| "error".into())),
            result: status
                .is_terminal()
                .then(|| result_of(t.id.as_deref(), Some(&t)))
                .flatten(),
            updated_at: None,
        })
    }

    /// The raw key, without `Bearer`.
    fn authorization(&self, token: &str) -> String {
        token.to_owned()
    }

    fn api_defaults(&self) -> ApiDefaults {
        ApiDefaults {
            base_url: Some("https://api.assemblyai.com/v2"),
            max_polls_per_run: None,
            max_answer_bytes: 64 << 20,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        crate::domain::provider::fixture("assemblyai", name)
    }

    #[test]
    fn completed_applies_directly_and_error_is_fetched_for_its_reason() {
        let done = AssemblyAi
            .parse_webhook(&fixture("webhook-completed.json"))
            .expect("completed");
        assert_eq!(
            done.job_id, "5552493-16d8-42d8-8feb-c2a16b56f6e8",
            "the docs' id, not a strict UUID"
        );
        assert_eq!((done.status, done.fetch), (JobStatus::Completed, false));
        assert!(done.result.as_deref().is_some_and(|r| r.contains("5552493-16d8")));

        let failed = AssemblyAi.parse_webhook(&fixture("webhook-error.json")).expect("error");
        assert_eq!((failed.status, failed.fetch), (JobStatus::Failed, true));
        let answer = AssemblyAi
            .parse_poll(&fixture("get-transcript-error.json"))
            .expect("answer");
        assert_eq!(answer.status, JobStatus::Failed);
        assert!(answer.error.as_deref().is_some_and(|e| e.contains("Download error")));
    }

    #[test]
    fn a_completed_transcript_keeps_its_id_and_duration_but_never_its_text() {
        let answer = AssemblyAi
            .parse_poll(&fixture("get-transcript-completed.json"))
            .expect("answer");
        assert_eq!(answer.status, JobStatus::Completed);
        let result: Value = serde_json::from_str(answer.result.as_deref().expect("result")).expect("json");
        assert_eq!(result["transcript_id"], "9ea68fd3-f953-42c1-9742-976c447fb463");
        assert!(result["audio_duration"].is_number());
        assert!(result.get("text").is_none() && result.get("words").is_none());
    }

    #[test]
    fn redacted_audio_notices_are_not_job_events() {
        assert!(AssemblyAi
            .not_a_job_event(&fixture("webhook-redacted-audio-ready.json"))
            .is_some());
        assert!(AssemblyAi.not_a_job_event(&fixture("webhook-completed.json")).is_none());
        assert!(AssemblyAi
            .parse_webhook(br#"{"transcript_id":"t","status":"queued"}"#)
            .is_err());
    }

    #[test]
    fn the_key_is_sent_raw() {
        assert_eq!(AssemblyAi.authorization("abc123"), "abc123");
    }

    /// AssemblyAI's transcript statuses: queued, processing, completed, error.
    #[test]
    fn each_documented_transcript_status_maps_to_its_job_status() {
        for (status, expected) in [
            ("queued", JobStatus::Submitted),
            ("processing", JobStatus::Processing),
            ("completed", JobStatus::Completed),
            ("error", JobStatus::Failed),
        ] {
            let body = format!(r#"{{"id":"t1","status":"{status}"}}"#);
            let answer = AssemblyAi.parse_poll(body.as_bytes()).expect(status);
            assert_eq!(answer.status, expected, "{status}");
        }
        assert!(AssemblyAi.parse_poll(br#"{"id":"t1","status":"Processing"}"#).is_err());
    }

    #[test]
    fn only_a_redacted_audio_notice_without_a_transcript_id_is_not_a_job_event() {
        let notice = br#"{"status": "redacted_audio_ready", "redacted_audio_url": "https://x"}"#;
        assert!(AssemblyAi.not_a_job_event(notice).is_some());
        let with_id = br#"{"status": "redacted_audio_ready", "transcript_id": "t1"}"#;
        assert_eq!(AssemblyAi.not_a_job_event(with_id), None);
        assert_eq!(AssemblyAi.not_a_job_event(br#"{"status": "completed"}"#), None);
    }

    /// A transcript answer carries its words: up to 64 MiB is read.
    #[test]
    fn assemblyai_is_polled_at_its_public_api_with_room_for_long_transcripts() {
        let defaults = AssemblyAi.api_defaults();
        assert_eq!(defaults.base_url, Some("https://api.assemblyai.com/v2"));
        assert_eq!(defaults.max_answer_bytes, 64 * 1024 * 1024);
    }
}
