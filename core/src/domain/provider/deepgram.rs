//! Deepgram's pre-recorded transcription with `?callback=` (developers.
//! deepgram.com/docs/callback): the request is answered at once with its
//! `request_id`, and the transcript, the same response a synchronous request
//! gets, is posted to the callback later: `{"metadata": {"request_id", …},
//! "results": {"channels": […]}}`. Deepgram signs nothing and has retired
//! its `dg-token` header; it sends the Basic credentials of a callback URL
//! `https://user:password@…` as `Authorization`, which a `header-token`
//! source on `authorization` checks.
//!
//! Deepgram keeps no transcript ("the Deepgram API response is the only
//! opportunity to retrieve the transcript"): jobhook's archive of the
//! delivery is where it stays, and `result` says so. Polling reads the
//! request log, `GET {base_url}/requests/{id}` (the base is
//! `https://api.deepgram.com/v1/projects/{project_id}`, key as `Token <key>`),
//! which tells whether the request ended and with what code, never the text.
//! An error is posted as Deepgram's error body, `{"err_code", "err_msg",
//! "request_id"}`.

use serde_json::{Map, Value};

use super::generic::{err, id_string};
use super::{bounded_result, ApiDefaults, ApiRequest, PayloadError, PollAnswer, ProviderProfile, WebhookPayload};
use crate::domain::job::JobStatus;

#[derive(Debug, Clone, Copy, Default)]
pub struct Deepgram;

/// A transcript with every word's timing runs to megabytes; the request
/// log is small, but its `response` may echo much.
const MAX_ANSWER_BYTES: usize = 4 << 20;

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

fn failed(error: String) -> PollAnswer {
    PollAnswer {
        error: Some(error),
        ..PollAnswer::bare_ended(JobStatus::Failed)
    }
}

impl ProviderProfile for Deepgram {
    fn name(&self) -> &'static str {
        "deepgram"
    }

    fn parse_webhook(&self, body: &[u8]) -> Result<WebhookPayload, PayloadError> {
        let root = object(body, "body")?;
        let (job_id, kind, answer) = if let Some(code) = root.get("err_code") {
            let job_id = id_string(root.get("request_id"), "request_id")?
                .ok_or_else(|| err("an error body needs \"request_id\""))?;
            let code = code.as_str().unwrap_or("error");
            let message = root.get("err_msg").and_then(Value::as_str).unwrap_or_default();
            (job_id, "callback.error", failed(format!("{code}: {message}")))
        } else {
            let metadata = root
                .get("metadata")
                .and_then(Value::as_object)
                .ok_or_else(|| err("field \"metadata\" must be an object"))?;
            let job_id = id_string(metadata.get("request_id"), "metadata.request_id")?
                .ok_or_else(|| err("field \"metadata.request_id\" is required"))?;
            if !root.get("results").is_some_and(Value::is_object) {
                return Err(err("field \"results\" must be an object"));
            }
            // Where the transcript is: in this delivery, kept by jobhook.
            let mut fields = Map::new();
            fields.insert("request_id".into(), Value::from(job_id.clone()));
            for name in ["duration", "channels", "sha256", "created"] {
                if let Some(value) = metadata.get(name) {
                    fields.insert(name.into(), value.clone());
                }
            }
            fields.insert("transcript_in".into(), Value::from("the archived delivery"));
            let answer = PollAnswer {
                result: bounded_result(fields),
                ..PollAnswer::bare_ended(JobStatus::Completed)
            };
            (job_id, "callback.results", answer)
        };
        Ok(WebhookPayload {
            // The request id names the job; the delivery is known by its hash.
            id: None,
            job_id,
            kind: kind.into(),
            status: answer.status,
            progress: None,
            output_url: None,
            error: answer.error,
            result: answer.result,
            provider_time: None,
            fetch: false,
        })
    }

    fn poll_request(&self, job_id: &str) -> Result<ApiRequest, PayloadError> {
        Ok(ApiRequest::path(&["requests", job_id]))
    }

    /// The request log: no `response` yet, still running; else its `code`.
    fn parse_poll(&self, body: &[u8]) -> Result<PollAnswer, PayloadError> {
        let root = object(body, "answer")?;
        let request = root
            .get("request")
            .and_then(Value::as_object)
            .ok_or_else(|| err("field \"request\" must be an object"))?;
        if request.get("response").is_none_or(Value::is_null) {
            return Ok(PollAnswer::bare_ended(JobStatus::Processing));
        }
        match request.get("code").and_then(Value::as_f64) {
            Some(code) if (200.0..300.0).contains(&code) => Ok(PollAnswer {
                // Deepgram kept no transcript: a lost callback's text is gone.
                result: bounded_result(Map::from_iter([
                    (
                        "request_id".into(),
                        request.get("request_id").cloned().unwrap_or(Value::Null),
                    ),
                    (
                        "transcript_in".into(),
                        Value::from("nowhere: the callback was not received"),
                    ),
                ])),
                ..PollAnswer::bare_ended(JobStatus::Completed)
            }),
            // The error the request was answered with, as its callback would
            // have carried it; else its code.
            Some(code) => {
                let response = &request["response"];
                Ok(failed(
                    match (response["err_code"].as_str(), response["err_msg"].as_str()) {
                        (Some(code), Some(message)) => format!("{code}: {message}"),
                        _ => format!("the request ended with code {code}"),
                    },
                ))
            }
            None => Err(err("field \"request.code\" must be a number")),
        }
    }

    fn authorization(&self, token: &str) -> String {
        format!("Token {token}")
    }

    fn api_defaults(&self) -> ApiDefaults {
        ApiDefaults {
            // The project id is part of the base: there is no default.
            base_url: None,
            max_polls_per_run: None,
            max_answer_bytes: MAX_ANSWER_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        crate::domain::provider::fixture("deepgram", name)
    }

    #[test]
    fn a_transcript_callback_completes_the_request_and_says_where_the_text_is() {
        let done = Deepgram
            .parse_webhook(&fixture("webhook-results.json"))
            .expect("results");
        assert_eq!(done.job_id, "2479c8c8-8185-40ac-9ac6-f0874419f793");
        assert_eq!(
            (done.status, done.kind.as_str()),
            (JobStatus::Completed, "callback.results")
        );
        let result: Value = serde_json::from_str(done.result.as_deref().expect("result")).expect("JSON");
        assert_eq!(result["duration"], 25.933313);
        assert_eq!(result["transcript_in"], "the archived delivery");
        assert!(
            !done.result.expect("result").contains("spacewalk"),
            "the transcript is not the result"
        );
        let failed = Deepgram.parse_webhook(&fixture("webhook-error.json")).expect("error");
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(
            failed.error.as_deref(),
            Some("Bad Request: Bad Request: failed to process audio: corrupt or unsupported data")
        );
        for (body, field) in [
            (r#"{"metadata":{},"results":{}}"#, "metadata.request_id"),
            (r#"{"metadata":{"request_id":"r"}}"#, "results"),
            (r#"{"err_code":"x"}"#, "request_id"),
        ] {
            let e = Deepgram.parse_webhook(body.as_bytes()).expect_err(body);
            assert!(e.to_string().contains(field), "{body}: {e}");
        }
    }

    #[test]
    fn the_request_log_says_whether_a_request_ended_and_how() {
        let done = Deepgram.parse_poll(&fixture("get-request.json")).expect("answer");
        assert_eq!(done.status, JobStatus::Completed);
        assert!(done.result.expect("result").contains("not received"));
        let running = Deepgram
            .parse_poll(br#"{"request":{"request_id":"r","response":null,"code":null}}"#)
            .expect("running");
        assert_eq!(running.status, JobStatus::Processing);
        let failed = Deepgram
            .parse_poll(br#"{"request":{"request_id":"r","response":{"err_code":"Bad Request"},"code":400}}"#)
            .expect("failed");
        assert_eq!(
            (failed.status, failed.error.as_deref()),
            (JobStatus::Failed, Some("the request ended with code 400"))
        );
        let explained = Deepgram
            .parse_poll(br#"{"request":{"response":{"err_code":"Bad Request","err_msg":"no audio"},"code":400}}"#)
            .expect("failed");
        assert_eq!(
            explained.error.as_deref(),
            Some("Bad Request: no audio"),
            "as its callback would say"
        );
        assert_eq!(Deepgram.poll_request("r").expect("request").path, ["requests", "r"]);
        assert_eq!(Deepgram.authorization("k"), "Token k");
    }

    /// Deepgram's docs' callback URL `https://username:password@example.com/callback`
    /// arrives with the Basic header RFC 7617 derives from it: a
    /// `header-token` source on `authorization` takes exactly that, and the
    /// header is never archived.
    #[test]
    fn a_callback_with_the_url_s_basic_credentials_verifies_as_a_header_token() {
        let doc = r#"{"sources": {"dg": {"scheme": "header-token", "header": "authorization", "provider": "deepgram",
            "secrets": ["Basic dXNlcm5hbWU6cGFzc3dvcmQ="]}}}"#;
        let sources = crate::domain::sources::Sources::parse(doc).expect("sources");
        let source = sources.get("dg").expect("dg");
        let body = bytes::Bytes::from(fixture("webhook-results.json"));
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "authorization",
            "Basic dXNlcm5hbWU6cGFzc3dvcmQ=".parse().expect("value"),
        );
        let verified = crate::domain::signature::verify(source, &headers, body.clone(), 0).expect("verified");
        assert!(!verified.headers().contains_key("authorization"));
        headers.insert("authorization", "Basic dXNlcm5hbWU6d3Jvbmc=".parse().expect("value"));
        assert!(crate::domain::signature::verify(source, &headers, body, 0).is_err());
    }
}
