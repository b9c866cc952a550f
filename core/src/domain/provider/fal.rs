//! fal.ai's queue (docs.fal.ai, "Webhooks" and "Queue"): a request
//! submitted to `https://queue.fal.run/{owner}/{app}` with `?fal_webhook=…`
//! is announced there once it ends: `{"request_id", "gateway_request_id",
//! "status": "OK" | "ERROR", "payload", "error"}`, signed with Ed25519 (the
//! `fal` scheme). `payload` is the model's output, or the error's detail;
//! when it cannot be serialized it is null beside a `payload_error`.
//!
//! Polling: `GET {base_url}/requests/{id}/status` (the base is the app's,
//! `https://queue.fal.run/{owner}/{app}`, without any sub-path, as the
//! submission's `status_url` shows) answers `IN_QUEUE` or `IN_PROGRESS`
//! with 202 and `COMPLETED` with 200, and a completed request's output is
//! `GET {base_url}/requests/{id}`. fal's key is sent as `Key <key>`.

use serde_json::{Map, Value};

use super::generic::{err, id_string, parse_error};
use super::{bounded_result, ApiDefaults, ApiRequest, PayloadError, PollAnswer, ProviderProfile, WebhookPayload};
use crate::domain::job::JobStatus;

#[derive(Debug, Clone, Copy, Default)]
pub struct Fal;

const MAX_URL_LEN: usize = 4096;

fn object(body: &[u8], what: &str) -> Result<Map<String, Value>, PayloadError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(root)) => Ok(root),
        Ok(_) => Err(err(format!("{what} must be a JSON object"))),
        Err(e) => Err(err(format!(
            "{what} is not JSON (line {} column {})",
            e.line(),
            e.column()
        ))),
    }
}

/// The first file a model's output names: fal's outputs carry files as
/// `{"url": …}` objects under `images`, `image`, `video`, `audio` and the like.
fn output_url(payload: &Value) -> Option<String> {
    let is_url = |s: &&str| (s.starts_with("https://") || s.starts_with("http://")) && s.len() <= MAX_URL_LEN;
    let file_url = |v: &Value| v.get("url").and_then(Value::as_str).filter(is_url).map(str::to_owned);
    let fields = payload.as_object()?;
    [
        "images",
        "image",
        "video",
        "videos",
        "audio",
        "audio_file",
        "audio_url",
        "file",
    ]
    .iter()
    .filter_map(|name| fields.get(*name))
    .find_map(|v| match v {
        Value::Array(items) => items.iter().find_map(file_url),
        Value::String(s) => Some(s.as_str()).filter(is_url).map(str::to_owned),
        other => file_url(other),
    })
}

/// A completed request's answer: the output in `result` (bounded), and the
/// first file it names.
fn completed(payload: &Value, extra: Option<(&str, &Value)>) -> PollAnswer {
    let mut fields = Map::new();
    fields.insert("payload".into(), payload.clone());
    if let Some((name, value)) = extra {
        fields.insert(name.into(), value.clone());
    }
    PollAnswer {
        status: JobStatus::Completed,
        progress: None,
        output_url: output_url(payload),
        error: None,
        result: bounded_result(fields),
        updated_at: None,
    }
}

impl ProviderProfile for Fal {
    fn name(&self) -> &'static str {
        "fal"
    }

    fn parse_webhook(&self, body: &[u8]) -> Result<WebhookPayload, PayloadError> {
        let root = object(body, "body")?;
        let job_id =
            id_string(root.get("request_id"), "request_id")?.ok_or_else(|| err("field \"request_id\" is required"))?;
        let payload = root.get("payload").cloned().unwrap_or(Value::Null);
        let answer = match root.get("status").and_then(Value::as_str) {
            Some("OK") => completed(&payload, root.get("payload_error").map(|e| ("payload_error", e))),
            Some("ERROR") => {
                // The error, and its detail when the model gave one (a 422's
                // validation errors).
                let error = parse_error(root.get("error"))?.unwrap_or_else(|| "ERROR".into());
                let error = match &payload {
                    Value::Null => error,
                    detail => format!("{error}: {}", detail.get("detail").unwrap_or(detail)),
                };
                PollAnswer {
                    error: Some(error),
                    ..PollAnswer::bare_ended(JobStatus::Failed)
                }
            }
            _ => return Err(err("field \"status\" must be OK or ERROR")),
        };
        Ok(WebhookPayload {
            // The request id names the job; the delivery is known by its hash.
            id: None,
            job_id,
            kind: format!(
                "request.{}",
                if answer.status == JobStatus::Completed {
                    "ok"
                } else {
                    "error"
                }
            ),
            status: answer.status,
            progress: None,
            output_url: answer.output_url,
            error: answer.error,
            result: answer.result,
            provider_time: None,
            fetch: false,
        })
    }

    fn poll_request(&self, job_id: &str) -> Result<ApiRequest, PayloadError> {
        Ok(ApiRequest::path(&["requests", job_id, "status"]))
    }

    fn parse_poll(&self, body: &[u8]) -> Result<PollAnswer, PayloadError> {
        let root = object(body, "answer")?;
        // A failed run ends COMPLETED too, with its error beside it.
        if let Some(error) = parse_error(root.get("error"))? {
            let kind = root.get("error_type").and_then(Value::as_str);
            return Ok(PollAnswer {
                error: Some(match kind {
                    Some(kind) => format!("{kind}: {error}"),
                    None => error,
                }),
                ..PollAnswer::bare_ended(JobStatus::Failed)
            });
        }
        let status = match root.get("status").and_then(Value::as_str) {
            Some("IN_QUEUE") => JobStatus::Submitted,
            Some("IN_PROGRESS") => JobStatus::Processing,
            Some("COMPLETED") => JobStatus::Completed,
            _ => return Err(err("field \"status\" must be IN_QUEUE, IN_PROGRESS or COMPLETED")),
        };
        Ok(PollAnswer::bare_ended(status))
    }

    /// A completed request's output is a second read.
    fn follow_up(&self, job_id: &str, answer: &PollAnswer) -> Option<ApiRequest> {
        (answer.status == JobStatus::Completed).then(|| ApiRequest::path(&["requests", job_id]))
    }

    fn parse_follow_up(&self, _job_id: &str, _answer: PollAnswer, body: &[u8]) -> Result<PollAnswer, PayloadError> {
        let output: Value = serde_json::from_slice(body).map_err(|e| {
            err(format!(
                "the result is not JSON (line {} column {})",
                e.line(),
                e.column()
            ))
        })?;
        Ok(completed(&output, None))
    }

    fn authorization(&self, token: &str) -> String {
        format!("Key {token}")
    }

    fn api_defaults(&self) -> ApiDefaults {
        ApiDefaults {
            // The app's own path is part of the base: there is no default.
            base_url: None,
            ..super::Generic.api_defaults()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        crate::domain::provider::fixture("fal", name)
    }

    #[test]
    fn an_ok_delivery_completes_the_request_with_its_output_and_first_file() {
        let done = Fal.parse_webhook(&fixture("webhook-ok.json")).expect("ok");
        assert_eq!(done.job_id, "123e4567-e89b-12d3-a456-426614174000");
        assert_eq!((done.status, done.kind.as_str()), (JobStatus::Completed, "request.ok"));
        assert_eq!(done.output_url.as_deref(), Some("https://url.to/image.png"));
        let result: Value = serde_json::from_str(done.result.as_deref().expect("result")).expect("JSON");
        assert_eq!(result["payload"]["seed"], 196619188014358660_u64);
        let unserializable = Fal.parse_webhook(&fixture("webhook-payload-error.json")).expect("ok");
        assert_eq!(
            (unserializable.status, unserializable.output_url),
            (JobStatus::Completed, None)
        );
        assert!(unserializable.result.expect("result").contains("not JSON serializable"));
    }

    #[test]
    fn an_error_delivery_fails_the_request_with_the_error_and_its_detail() {
        let failed = Fal.parse_webhook(&fixture("webhook-error.json")).expect("error");
        assert_eq!((failed.status, failed.result), (JobStatus::Failed, None));
        let error = failed.error.expect("error");
        assert!(error.starts_with("Invalid status code: 422: "), "{error}");
        assert!(error.contains("field required"), "{error}");
        for (body, field) in [
            (r#"{"request_id":"r","status":"DONE"}"#, "status"),
            (r#"{"status":"OK"}"#, "request_id"),
            ("[]", "object"),
        ] {
            let e = Fal.parse_webhook(body.as_bytes()).expect_err(body);
            assert!(e.to_string().contains(field), "{body}: {e}");
        }
    }

    #[test]
    fn a_poll_reads_the_status_then_a_completed_request_s_output() {
        let queued = Fal.parse_poll(&fixture("status-in-queue.json")).expect("queued");
        assert_eq!(queued.status, JobStatus::Submitted);
        let running = Fal.parse_poll(&fixture("status-in-progress.json")).expect("running");
        assert_eq!(running.status, JobStatus::Processing);
        assert_eq!(Fal.follow_up("r", &running), None);
        let done = Fal.parse_poll(&fixture("status-completed.json")).expect("completed");
        let follow_up = Fal.follow_up("r-1", &done).expect("the output is read");
        assert_eq!(follow_up.path, ["requests", "r-1"]);
        assert_eq!(
            Fal.poll_request("r-1").expect("request").path,
            ["requests", "r-1", "status"]
        );
        let output = br#"{"images":[{"url":"https://v3.fal.media/files/x.png"}],"seed":7}"#;
        let answer = Fal.parse_follow_up("r-1", done, output).expect("output");
        assert_eq!(answer.output_url.as_deref(), Some("https://v3.fal.media/files/x.png"));
        let failed = Fal
            .parse_poll(br#"{"status":"COMPLETED","error":"Runner disconnected","error_type":"runner_disconnected"}"#)
            .expect("failed");
        assert_eq!(
            (failed.status, failed.error.as_deref()),
            (JobStatus::Failed, Some("runner_disconnected: Runner disconnected"))
        );
        assert_eq!(Fal.authorization("k"), "Key k");
    }
}
