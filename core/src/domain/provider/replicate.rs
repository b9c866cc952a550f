//! Replicate (replicate.com/docs/topics/webhooks): Standard Webhooks
//! signatures (one `whsec_` secret per account), and a body that *is* the
//! prediction object, as `GET /v1/predictions/{id}` returns it, with no
//! event type. `status` is `starting`, `processing`, `succeeded`, `failed`
//! or `canceled` (one L); keys such as `output`, `completed_at` and
//! `metrics` may be left out rather than sent as null. `output` is a
//! string, a list (often of file URLs) or an object, depending on the model.
//!
//! The body has no event id of its own (`id` is the prediction's), so an
//! event's identity is its delivery's `webhook-id`, which Replicate keeps
//! across retries of one message.

use serde_json::{Map, Value};

use super::generic::{parse_error, parse_time};
use super::{bounded_result, ApiDefaults, ApiRequest, PayloadError, PollAnswer, ProviderProfile, WebhookPayload};
use crate::domain::job::JobStatus;

#[derive(Debug, Clone, Copy, Default)]
pub struct Replicate;

const MAX_ID_LEN: usize = 256;
const MAX_URL_LEN: usize = 4096;

fn err(message: impl Into<String>) -> PayloadError {
    PayloadError(message.into())
}

/// The prediction, understood: shared by webhooks and poll answers.
struct Prediction {
    id: String,
    raw_status: String,
    status: JobStatus,
    output_url: Option<String>,
    error: Option<String>,
    result: Option<String>,
    time: Option<time::OffsetDateTime>,
}

fn status_of(text: &str) -> Option<JobStatus> {
    Some(match text {
        // Accepted and booting, not yet running.
        "starting" => JobStatus::Submitted,
        "processing" => JobStatus::Processing,
        "succeeded" => JobStatus::Completed,
        "failed" => JobStatus::Failed,
        "canceled" => JobStatus::Canceled,
        _ => return None,
    })
}

/// A URL the output names: the output itself when it is one, else the first
/// URL of a list. Objects and text outputs have none.
fn output_url(output: Option<&Value>) -> Option<String> {
    let is_url = |s: &&str| (s.starts_with("https://") || s.starts_with("http://")) && s.len() <= MAX_URL_LEN;
    match output? {
        Value::String(s) => Some(s.as_str()).filter(is_url).map(str::to_owned),
        Value::Array(items) => items.iter().filter_map(Value::as_str).find(is_url).map(str::to_owned),
        _ => None,
    }
}

fn parse(body: &[u8], what: &str) -> Result<Prediction, PayloadError> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| err(format!("{what} is not JSON (line {} column {})", e.line(), e.column())))?;
    let Value::Object(root) = doc else {
        return Err(err(format!("{what} must be a prediction object")));
    };
    let id = match root.get("id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID_LEN && !s.chars().any(char::is_control) => {
            s.clone()
        }
        _ => return Err(err("field \"id\" (the prediction id) must be a non-empty string")),
    };
    let raw_status = root
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let status = status_of(&raw_status)
        .ok_or_else(|| err("field \"status\" must be starting, processing, succeeded, failed or canceled"))?;
    let time_field =
        |root: &Map<String, Value>, names: &[&str]| -> Result<Option<time::OffsetDateTime>, PayloadError> {
            for name in names {
                if let Some(t) = parse_time(root.get(*name), name)? {
                    return Ok(Some(t));
                }
            }
            Ok(None)
        };
    Ok(Prediction {
        id: id.clone(),
        raw_status,
        status,
        output_url: if status == JobStatus::Completed {
            output_url(root.get("output"))
        } else {
            None
        },
        error: parse_error(root.get("error"))?,
        // The output when small (else named as omitted), and where to read it.
        result: if status == JobStatus::Completed {
            let mut fields = Map::new();
            fields.insert("prediction_id".into(), Value::from(id.clone()));
            if let Some(output) = root.get("output") {
                fields.insert("output".into(), output.clone());
            }
            bounded_result(fields)
        } else {
            None
        },
        time: time_field(&root, &["completed_at", "started_at", "created_at"])?,
    })
}

impl ProviderProfile for Replicate {
    fn name(&self) -> &'static str {
        "replicate"
    }

    /// "For predictions created through the API, all input parameters,
    /// output values, output files, and logs are automatically removed after
    /// an hour" (replicate.com/docs/topics/predictions/data-retention).
    fn output_retention(&self) -> Option<std::time::Duration> {
        Some(std::time::Duration::from_secs(3600))
    }

    fn parse_webhook(&self, body: &[u8]) -> Result<WebhookPayload, PayloadError> {
        let p = parse(body, "body")?;
        Ok(WebhookPayload {
            // The prediction id is the job's, not the event's.
            id: None,
            job_id: p.id,
            kind: format!("prediction.{}", p.raw_status),
            status: p.status,
            progress: None,
            output_url: p.output_url,
            error: p.error,
            result: p.result,
            provider_time: p.time,
            fetch: false,
        })
    }

    fn poll_request(&self, job_id: &str) -> Result<ApiRequest, PayloadError> {
        Ok(ApiRequest::path(&["predictions", job_id]))
    }

    fn api_defaults(&self) -> ApiDefaults {
        ApiDefaults {
            base_url: Some("https://api.replicate.com/v1"),
            ..super::Generic.api_defaults()
        }
    }

    fn parse_poll(&self, body: &[u8]) -> Result<PollAnswer, PayloadError> {
        let p = parse(body, "answer")?;
        Ok(PollAnswer {
            status: p.status,
            progress: None,
            output_url: p.output_url,
            error: p.error,
            result: p.result,
            updated_at: p.time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        crate::domain::provider::fixture("replicate", name)
    }

    #[test]
    fn every_documented_status_maps_onto_the_job_model() {
        let cases = [
            ("webhook-starting.json", JobStatus::Submitted, None),
            ("webhook-processing-no-output-key.json", JobStatus::Processing, None),
            ("webhook-succeeded.json", JobStatus::Completed, None),
            (
                "webhook-succeeded-list-output.json",
                JobStatus::Completed,
                Some("https://replicate.delivery/xezq/abc123/out-0.webp"),
            ),
            ("webhook-failed.json", JobStatus::Failed, None),
            ("webhook-canceled.json", JobStatus::Canceled, None),
        ];
        for (name, status, url) in cases {
            let p = Replicate
                .parse_webhook(&fixture(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!((p.status, p.output_url.as_deref()), (status, url), "{name}");
            assert_eq!(p.id, None, "{name}: identity comes from webhook-id");
            assert!(p.provider_time.is_some(), "{name}");
            let poll = Replicate
                .parse_poll(&fixture(name))
                .expect("the same object answers a poll");
            assert_eq!(poll.status, status, "{name}");
        }
        let failed = Replicate
            .parse_webhook(&fixture("webhook-failed.json"))
            .expect("failed");
        assert_eq!(failed.error.as_deref(), Some("CUDA out of memory"));
        let done = Replicate
            .parse_webhook(&fixture("webhook-succeeded.json"))
            .expect("succeeded");
        assert_eq!(done.job_id, "gm3qorzdhgbfurvjtvhg6dckhu");
        assert_eq!(done.output_url, None, "a text output is no URL");
    }

    #[test]
    fn unknown_statuses_and_bodies_without_an_id_are_refused_by_field() {
        for (body, field) in [
            (r#"{"id":"p1","status":"aborted"}"#, "status"),
            (r#"{"status":"succeeded"}"#, "\"id\""),
            (r#"["not","an","object"]"#, "prediction object"),
        ] {
            let e = Replicate.parse_webhook(body.as_bytes()).expect_err(body);
            assert!(e.to_string().contains(field), "{e}");
        }
    }

    #[test]
    fn replicates_published_signature_vector_verifies() {
        // From the official SDKs' webhook tests (replicate-javascript
        // index.test.ts, replicate-python tests/test_webhooks.py).
        let doc = r#"{"sources": {"r": {"scheme": "standard-webhooks", "provider": "replicate",
            "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}}}"#;
        let sources = crate::domain::sources::Sources::parse(doc).expect("sources");
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek".parse().expect("value"));
        headers.insert("webhook-timestamp", "1614265330".parse().expect("value"));
        headers.insert(
            "webhook-signature",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
                .parse()
                .expect("value"),
        );
        let body = bytes::Bytes::from_static(br#"{"test": 2432232314}"#);
        let source = sources.get("r").expect("r");
        assert!(crate::domain::signature::verify(source, &headers, body, 1614265330).is_ok());
    }

    /// Replicate's output is a URL, a list of them, or anything else a model
    /// returns; only a succeeded prediction has one.
    #[test]
    fn a_succeeded_prediction_s_output_url_is_its_url_or_its_first_and_nothing_else_has_one() {
        let poll = |status: &str, output: serde_json::Value| {
            let body = serde_json::json!({"id": "p1", "status": status, "output": output}).to_string();
            Replicate.parse_poll(body.as_bytes()).expect("answer")
        };
        let single = poll("succeeded", serde_json::json!("https://replicate.delivery/a.png"));
        assert_eq!(single.output_url.as_deref(), Some("https://replicate.delivery/a.png"));
        let listed = poll(
            "succeeded",
            serde_json::json!(["not a url", "https://replicate.delivery/b.png"]),
        );
        assert_eq!(listed.output_url.as_deref(), Some("https://replicate.delivery/b.png"));
        assert_eq!(poll("succeeded", serde_json::json!("a caption")).output_url, None);
        assert_eq!(poll("succeeded", serde_json::json!({"text": "x"})).output_url, None);
        let failed = poll("failed", serde_json::json!("https://replicate.delivery/a.png"));
        assert_eq!((failed.output_url, failed.result), (None, None));
        assert_eq!(Replicate.api_defaults().base_url, Some("https://api.replicate.com/v1"));
    }
}
