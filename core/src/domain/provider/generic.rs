//! The generic profile, jobhook's documented default wire format:
//!
//! ```json
//! { "id": "evt_…", "type": "job.progress", "created_at": "2026-05-13T12:00:05Z",
//!   "data": { "job_id": "job_123", "status": "processing", "progress": 40,
//!             "output_url": null, "error": null } }
//! ```

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{bounded_result, ApiRequest, PayloadError, PollAnswer, ProviderProfile, WebhookPayload};
use crate::domain::job::JobStatus;

#[derive(Debug, Clone, Copy, Default)]
pub struct Generic;

/// Ids end up in storage keys; bound them.
const MAX_ID_LEN: usize = 256;

pub(crate) fn err(message: impl Into<String>) -> PayloadError {
    PayloadError(message.into())
}

fn optional_string(object: &Map<String, Value>, field: &str) -> Result<Option<String>, PayloadError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= 4096 => Ok(Some(s.clone())),
        Some(_) => Err(err(format!("field {field:?} must be a string of at most 4096 bytes"))),
    }
}

pub(crate) fn id_string(value: Option<&Value>, field: &str) -> Result<Option<String>, PayloadError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID_LEN && !s.chars().any(char::is_control) => {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(err(format!(
            "field {field:?} must be a non-empty string of at most {MAX_ID_LEN} bytes"
        ))),
    }
}

/// `progress`: a whole number from 0 to 100, or absent.
pub(crate) fn parse_progress(value: Option<&Value>) -> Result<Option<u8>, PayloadError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|p| *p <= 100)
            .map(|p| Some(p as u8))
            .ok_or_else(|| err("field \"progress\" must be a whole number from 0 to 100")),
    }
}

/// `error`: a string, or an object kept as its JSON text.
pub(crate) fn parse_error(value: Option<&Value>) -> Result<Option<String>, PayloadError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v @ Value::Object(_)) => Ok(Some(v.to_string())),
        Some(_) => Err(err("field \"error\" must be a string or an object")),
    }
}

/// `result`: an object of at most [`super::MAX_RESULT_BYTES`], or absent.
fn parse_result(value: Option<&Value>) -> Result<Option<String>, PayloadError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(fields)) => {
            let text = bounded_result(fields.clone());
            match &text {
                Some(t) if t.contains("\"omitted\"") => Err(err(format!(
                    "field \"result\" must be an object of at most {} bytes",
                    super::MAX_RESULT_BYTES
                ))),
                _ => Ok(text),
            }
        }
        Some(_) => Err(err("field \"result\" must be an object")),
    }
}

/// Unix seconds (a number), as OpenAI and OpusClip's timestamps are.
pub(crate) fn unix_time(value: Option<&Value>) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(value?.as_i64()?).ok()
}

/// The body as a JSON object; `what` names it in the error.
pub(crate) fn json_object(body: &[u8], what: &str) -> Result<Map<String, Value>, PayloadError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(err(format!("{what} must be a JSON object"))),
        Err(e) => Err(err(format!(
            "{what} is not JSON (line {} column {})",
            e.line(),
            e.column()
        ))),
    }
}

pub(crate) fn parse_time(value: Option<&Value>, field: &str) -> Result<Option<OffsetDateTime>, PayloadError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => OffsetDateTime::parse(s, &Rfc3339)
            .map(Some)
            .map_err(|_| err(format!("field {field:?} must be an RFC 3339 time"))),
        Some(_) => Err(err(format!("field {field:?} must be an RFC 3339 time"))),
    }
}

impl ProviderProfile for Generic {
    fn name(&self) -> &'static str {
        "generic"
    }

    fn parse_webhook(&self, body: &[u8]) -> Result<WebhookPayload, PayloadError> {
        let doc: Value = serde_json::from_slice(body)
            .map_err(|e| err(format!("body is not JSON (line {} column {})", e.line(), e.column())))?;
        let Value::Object(root) = doc else {
            return Err(err("body must be a JSON object"));
        };
        let kind = match root.get("type") {
            Some(Value::String(t)) => t.clone(),
            _ => return Err(err("field \"type\" is required")),
        };
        let status = match kind.as_str() {
            "job.started" | "job.progress" => JobStatus::Processing,
            "job.completed" => JobStatus::Completed,
            "job.failed" => JobStatus::Failed,
            "job.canceled" => JobStatus::Canceled,
            _ => {
                return Err(err(
                    "field \"type\" must be job.started, job.progress, job.completed, job.failed or job.canceled",
                ))
            }
        };
        let Some(Value::Object(data)) = root.get("data") else {
            return Err(err("field \"data\" must be an object"));
        };
        let job_id =
            id_string(data.get("job_id"), "data.job_id")?.ok_or_else(|| err("field \"data.job_id\" is required"))?;
        Ok(WebhookPayload {
            id: id_string(root.get("id"), "id")?,
            job_id,
            kind,
            status,
            progress: parse_progress(data.get("progress"))?,
            output_url: optional_string(data, "output_url")?,
            error: parse_error(data.get("error"))?,
            result: parse_result(data.get("result"))?,
            provider_time: parse_time(root.get("created_at"), "created_at")?,
            fetch: false,
        })
    }

    fn poll_request(&self, job_id: &str) -> Result<ApiRequest, PayloadError> {
        Ok(ApiRequest::path(&["jobs", job_id]))
    }

    /// `{ "id": "job_123", "status": "queued|processing|completed|failed",
    /// "progress": 40, "output_url": null, "error": null, "updated_at": "…" }`
    fn parse_poll(&self, body: &[u8]) -> Result<PollAnswer, PayloadError> {
        let doc: Value = serde_json::from_slice(body)
            .map_err(|e| err(format!("answer is not JSON (line {} column {})", e.line(), e.column())))?;
        let Value::Object(root) = doc else {
            return Err(err("answer must be a JSON object"));
        };
        let status = match root.get("status").and_then(Value::as_str) {
            Some("queued") => JobStatus::Submitted,
            Some("processing") => JobStatus::Processing,
            Some("completed") => JobStatus::Completed,
            Some("failed") => JobStatus::Failed,
            Some("canceled") => JobStatus::Canceled,
            _ => {
                return Err(err(
                    "field \"status\" must be queued, processing, completed, failed or canceled",
                ))
            }
        };
        Ok(PollAnswer {
            status,
            progress: parse_progress(root.get("progress"))?,
            output_url: optional_string(&root, "output_url")?,
            error: parse_error(root.get("error"))?,
            result: parse_result(root.get("result"))?,
            updated_at: parse_time(root.get("updated_at"), "updated_at")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<WebhookPayload, PayloadError> {
        Generic.parse_webhook(v.to_string().as_bytes())
    }

    #[test]
    fn parses_the_documented_example() {
        let p = parse(
            json!({"id": "evt_1", "type": "job.progress", "created_at": "2026-05-13T12:00:05Z",
            "data": {"job_id": "job_123", "status": "processing", "progress": 40, "output_url": null, "error": null}}),
        )
        .expect("valid");
        assert_eq!(p.id.as_deref(), Some("evt_1"));
        assert_eq!(p.job_id, "job_123");
        assert_eq!(p.status, JobStatus::Processing);
        assert_eq!(p.progress, Some(40));
        assert_eq!(p.provider_time.map(|t| t.unix_timestamp()), Some(1778673605));
    }

    #[test]
    fn error_may_be_a_string_or_an_object() {
        let p = parse(json!({"type": "job.failed", "data": {"job_id": "j", "error": {"code": "E1"}}})).expect("valid");
        assert_eq!(p.error.as_deref(), Some(r#"{"code":"E1"}"#));
        assert_eq!(p.status, JobStatus::Failed);
        let p = parse(json!({"type": "job.failed", "data": {"job_id": "j", "error": "boom"}})).expect("valid");
        assert_eq!(p.error.as_deref(), Some("boom"));
    }

    #[test]
    fn bad_payloads_are_rejected_with_the_field_named() {
        let cases = [
            (json!({"type": "job.progress", "data": {"progress": 5}}), "data.job_id"),
            (json!({"type": "job.progress", "data": {"job_id": ""}}), "data.job_id"),
            (json!({"type": "job.exploded", "data": {"job_id": "j"}}), "type"),
            (json!({"data": {"job_id": "j"}}), "type"),
            (json!({"type": "job.progress"}), "data"),
            (
                json!({"type": "job.progress", "data": {"job_id": "j", "progress": 101}}),
                "progress",
            ),
            (
                json!({"type": "job.progress", "data": {"job_id": "j", "progress": 4.5}}),
                "progress",
            ),
            (
                json!({"type": "job.failed", "data": {"job_id": "j", "error": 7}}),
                "error",
            ),
            (
                json!({"type": "job.started", "created_at": "yesterday", "data": {"job_id": "j"}}),
                "created_at",
            ),
            (json!(["not", "an", "object"]), "object"),
        ];
        for (doc, field) in cases {
            let e = parse(doc.clone()).expect_err("rejected");
            assert!(e.0.contains(field), "{doc}: {e}");
        }
        assert!(Generic
            .parse_webhook(b"{not json")
            .expect_err("rejected")
            .0
            .contains("not JSON"));
    }

    #[test]
    fn parses_poll_answers() {
        let body = json!({"id": "job_123", "status": "completed", "progress": 100,
            "output_url": "https://cdn/x.mp4", "error": null, "updated_at": "2026-05-13T12:00:05Z"});
        let a = Generic.parse_poll(body.to_string().as_bytes()).expect("valid");
        assert_eq!(a.status, JobStatus::Completed);
        assert_eq!(a.output_url.as_deref(), Some("https://cdn/x.mp4"));
        let queued = Generic.parse_poll(br#"{"id":"j","status":"queued"}"#).expect("valid");
        assert_eq!(queued.status, JobStatus::Submitted);
        for bad in [
            &br#"{"status":"done"}"#[..],
            b"[]",
            b"<html>",
            br#"{"status":"processing","progress":"x"}"#,
        ] {
            assert!(Generic.parse_poll(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn poll_event_ids_are_deterministic_per_job_status_and_progress() {
        use crate::domain::provider::job_event_from_poll;
        let answer = |status, progress| PollAnswer {
            result: None,
            status,
            progress,
            output_url: None,
            error: None,
            updated_at: None,
        };
        let a = job_event_from_poll("s", "j", &answer(JobStatus::Processing, Some(40)));
        let b = job_event_from_poll("s", "j", &answer(JobStatus::Processing, Some(40)));
        let c = job_event_from_poll("s", "j", &answer(JobStatus::Processing, Some(41)));
        let d = job_event_from_poll("s", "k", &answer(JobStatus::Processing, Some(40)));
        assert_eq!(a.event_id, b.event_id);
        assert_ne!(a.event_id, c.event_id);
        assert_ne!(a.event_id, d.event_id);
        assert_eq!(a.origin, crate::domain::job::Origin::Poll);
        assert_eq!(a.kind, "poll.processing");
    }

    #[test]
    fn each_generic_poll_status_maps_to_its_job_status() {
        for (status, expected) in [
            ("queued", JobStatus::Submitted),
            ("processing", JobStatus::Processing),
            ("completed", JobStatus::Completed),
            ("failed", JobStatus::Failed),
            ("canceled", JobStatus::Canceled),
        ] {
            let body = format!(r#"{{"id":"job_1","status":"{status}"}}"#);
            let answer = Generic.parse_poll(body.as_bytes()).expect(status);
            assert_eq!(answer.status, expected, "{status}");
        }
        assert!(Generic.parse_poll(br#"{"id":"job_1","status":"cancelled"}"#).is_err());
    }

    #[test]
    fn each_generic_webhook_type_maps_to_its_job_status() {
        for (kind, expected) in [
            ("job.started", JobStatus::Processing),
            ("job.progress", JobStatus::Processing),
            ("job.completed", JobStatus::Completed),
            ("job.failed", JobStatus::Failed),
            ("job.canceled", JobStatus::Canceled),
        ] {
            let payload = parse(json!({"id": "e1", "type": kind, "data": {"job_id": "job_1"}})).expect(kind);
            assert_eq!(payload.status, expected, "{kind}");
        }
    }

    #[test]
    fn a_result_is_kept_whole_or_refused_and_a_url_is_at_most_4096_bytes() {
        let with = |data: Value| parse(json!({"id": "e1", "type": "job.completed", "data": data}));
        let kept = with(json!({"job_id": "j", "result": {"file_id": "f1"}})).expect("kept");
        assert_eq!(kept.result.as_deref(), Some(r#"{"file_id":"f1"}"#));
        let huge = with(json!({"job_id": "j", "result": {"text": "x".repeat(9_000)}})).expect_err("too large");
        assert!(huge.to_string().contains("at most 8192 bytes"), "{huge}");
        let url = |len: usize| with(json!({"job_id": "j", "output_url": "u".repeat(len)}));
        assert!(url(4096).is_ok());
        assert!(url(4097).is_err());
    }
}
