//! OpenAI (platform.openai.com/docs/guides/webhooks and the OpenAPI spec,
//! openai/openai-openapi): Standard Webhooks signatures with `wh_…` delivery
//! ids, and **thin** events that name an object without its state:
//! `{"id":"evt_…","object":"event","created_at":<unix s>,"type":"batch.completed","data":{"id":"batch_…"}}`.
//! The state comes from `GET /v1/batches/{id}`, `/v1/responses/{id}` or
//! `/v1/fine_tuning/jobs/{id}`, chosen by the id's prefix, so the reconciler
//! can poll a job from its id alone.
//!
//! Spellings differ by object: batches and responses end `cancelled`, and
//! fine-tuning jobs end `succeeded`. `expired` and `incomplete` are failures
//! whose reason is kept in `error`. Events about anything else (evals,
//! realtime calls) are acknowledged as not job events.

use serde_json::{Map, Value};

use super::generic::{err, id_string, json_object, unix_time};
use super::{bounded_result, ApiDefaults, ApiRequest, PayloadError, PollAnswer, ProviderProfile, WebhookPayload};
use crate::domain::job::JobStatus;

#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAi;

/// The objects whose events are job events, by event-type prefix.
const JOB_EVENT_PREFIXES: &[&str] = &["batch.", "response.", "fine_tuning.job."];

/// What a job event announces, from its type.
fn announced(kind: &str) -> Option<JobStatus> {
    let object = JOB_EVENT_PREFIXES.iter().find(|p| kind.starts_with(**p))?;
    Some(match &kind[object.len()..] {
        "completed" | "succeeded" => JobStatus::Completed,
        "failed" | "expired" | "incomplete" => JobStatus::Failed,
        "cancelled" => JobStatus::Canceled,
        _ => return None,
    })
}

/// A status of `object`, as the job model knows it.
fn status_of(object: &str, status: &str) -> Option<JobStatus> {
    use JobStatus::*;
    Some(match (object, status) {
        ("batch", "validating") | ("response", "queued") | ("fine_tuning.job", "validating_files" | "queued") => {
            Submitted
        }
        // Finalizing and cancelling still move; the job has not ended.
        ("batch", "in_progress" | "finalizing" | "cancelling")
        | ("response", "in_progress")
        | ("fine_tuning.job", "running") => Processing,
        ("batch" | "response", "completed") | ("fine_tuning.job", "succeeded") => Completed,
        ("batch", "failed" | "expired") | ("response", "failed" | "incomplete") | ("fine_tuning.job", "failed") => {
            Failed
        }
        ("batch" | "response" | "fine_tuning.job", "cancelled") => Canceled,
        _ => return None,
    })
}

/// A batch's progress: the share of its requests that have finished.
fn batch_progress(root: &Map<String, Value>) -> Option<u8> {
    let counts = root.get("request_counts")?;
    let total = counts["total"].as_u64().filter(|t| *t > 0)?;
    let done = counts["completed"].as_u64()? + counts["failed"].as_u64().unwrap_or(0);
    Some((done.min(total) * 100 / total) as u8)
}

/// `{code, message}` objects and lists of them (a batch's `errors.data`).
fn error_text(value: Option<&Value>) -> Option<String> {
    let one = |e: &Value| -> Option<String> {
        let message = e["message"].as_str();
        match (e["code"].as_str(), message) {
            (Some(code), Some(message)) => Some(format!("{code}: {message}")),
            (None, Some(message)) => Some(message.to_owned()),
            (Some(code), None) => Some(code.to_owned()),
            (None, None) => None,
        }
    };
    match value? {
        Value::Object(o) if o.contains_key("data") => {
            let texts: Vec<String> = o["data"].as_array()?.iter().filter_map(one).collect();
            (!texts.is_empty()).then(|| texts.join("; "))
        }
        e @ Value::Object(_) => one(e),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn pick(root: &Map<String, Value>, keys: &[&str]) -> Map<String, Value> {
    keys.iter()
        .filter_map(|k| root.get(*k).map(|v| ((*k).to_owned(), v.clone())))
        .collect()
}

impl ProviderProfile for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn not_a_job_event(&self, body: &[u8]) -> Option<String> {
        let root = json_object(body, "body").ok()?;
        let kind = root.get("type")?.as_str()?;
        (!JOB_EVENT_PREFIXES.iter().any(|p| kind.starts_with(p)))
            .then(|| format!("an OpenAI {kind} event is not about a batch, response or fine-tuning job"))
    }

    fn parse_webhook(&self, body: &[u8]) -> Result<WebhookPayload, PayloadError> {
        let root = json_object(body, "body")?;
        let kind = root.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
        let status = announced(&kind).ok_or_else(|| {
            err("field \"type\" must be a batch.*, response.* or fine_tuning.job.* event that ends the job")
        })?;
        let data = root.get("data").and_then(Value::as_object);
        let job_id = id_string(data.and_then(|d| d.get("id")), "data.id")?
            .ok_or_else(|| err("field \"data.id\" (the object's id) is required"))?;
        self.poll_request(&job_id)?;
        Ok(WebhookPayload {
            id: id_string(root.get("id"), "id")?,
            job_id,
            kind,
            status,
            progress: None,
            output_url: None,
            error: None,
            result: None,
            provider_time: unix_time(root.get("created_at")),
            fetch: true,
        })
    }

    fn poll_request(&self, job_id: &str) -> Result<ApiRequest, PayloadError> {
        let collection: &[&str] = if job_id.starts_with("batch_") {
            &["batches"]
        } else if job_id.starts_with("resp_") {
            &["responses"]
        } else if job_id.starts_with("ftjob-") {
            &["fine_tuning", "jobs"]
        } else {
            return Err(err(
                "the object id must start with batch_, resp_ or ftjob- (a batch, response or fine-tuning job)",
            ));
        };
        let mut request = ApiRequest::path(collection);
        request.path.push(job_id.to_owned());
        Ok(request)
    }

    fn parse_poll(&self, body: &[u8]) -> Result<PollAnswer, PayloadError> {
        let root = json_object(body, "answer")?;
        let object = root.get("object").and_then(Value::as_str).unwrap_or_default();
        let raw = root.get("status").and_then(Value::as_str).unwrap_or_default();
        let status = status_of(object, raw).ok_or_else(|| {
            err("fields \"object\" and \"status\" must be a batch, response or fine_tuning.job status")
        })?;
        let (error, result, time_keys): (Option<String>, Map<String, Value>, &[&str]) = match object {
            "batch" => (
                match raw {
                    "expired" => Some("expired: the batch did not finish within its completion window".into()),
                    _ => error_text(root.get("errors")),
                },
                pick(&root, &["id", "output_file_id", "error_file_id", "request_counts"]),
                &[
                    "completed_at",
                    "failed_at",
                    "expired_at",
                    "cancelled_at",
                    "finalizing_at",
                    "in_progress_at",
                    "created_at",
                ],
            ),
            "response" => (
                match raw {
                    "incomplete" => Some(format!(
                        "incomplete: {}",
                        root.get("incomplete_details")
                            .and_then(|d| d["reason"].as_str())
                            .unwrap_or("no reason given")
                    )),
                    _ => error_text(root.get("error")),
                },
                // The output itself can be long: its id is how to read it.
                pick(&root, &["id", "model", "usage"]),
                &["completed_at", "created_at"],
            ),
            _ => (
                error_text(root.get("error")),
                pick(&root, &["id", "fine_tuned_model", "result_files", "trained_tokens"]),
                &["finished_at", "created_at"],
            ),
        };
        Ok(PollAnswer {
            status,
            progress: if object == "batch" && status == JobStatus::Processing {
                batch_progress(&root)
            } else {
                None
            },
            output_url: None,
            error: if matches!(status, JobStatus::Failed | JobStatus::Canceled) {
                error
            } else {
                None
            },
            result: status.is_terminal().then(|| bounded_result(result)).flatten(),
            updated_at: time_keys.iter().find_map(|k| unix_time(root.get(*k))),
        })
    }

    fn api_defaults(&self) -> ApiDefaults {
        ApiDefaults {
            base_url: Some("https://api.openai.com/v1"),
            ..super::Generic.api_defaults()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        crate::domain::provider::fixture("openai", name)
    }

    #[test]
    fn every_documented_job_event_is_thin_and_announces_its_end() {
        for (name, kind, status, job) in [
            (
                "webhook-response-completed.json",
                "response.completed",
                JobStatus::Completed,
                "resp_123",
            ),
            (
                "webhook-batch-completed.json",
                "batch.completed",
                JobStatus::Completed,
                "batch_abc123",
            ),
            (
                "webhook-batch-expired.json",
                "batch.expired",
                JobStatus::Failed,
                "batch_abc123",
            ),
            (
                "webhook-batch-cancelled.json",
                "batch.cancelled",
                JobStatus::Canceled,
                "batch_abc123",
            ),
            (
                "webhook-fine-tuning-succeeded.json",
                "fine_tuning.job.succeeded",
                JobStatus::Completed,
                "ftjob-abc123",
            ),
        ] {
            let p = OpenAi
                .parse_webhook(&fixture(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                (p.kind.as_str(), p.status, p.job_id.as_str()),
                (kind, status, job),
                "{name}"
            );
            assert!(p.fetch, "{name}: the state is fetched");
            assert!(p.id.as_deref().is_some_and(|id| id.starts_with("evt_")), "{name}");
            assert!(p.provider_time.is_some(), "{name}");
        }
    }

    #[test]
    fn events_about_other_objects_are_not_job_events() {
        let eval =
            br#"{"id":"evt_1","object":"event","created_at":1,"type":"eval.run.succeeded","data":{"id":"evalrun_1"}}"#;
        assert!(OpenAi.not_a_job_event(eval).is_some());
        assert!(OpenAi
            .not_a_job_event(&fixture("webhook-batch-completed.json"))
            .is_none());
        let unknown_id = br#"{"id":"evt_1","type":"batch.completed","created_at":1,"data":{"id":"x_1"}}"#;
        assert!(OpenAi.parse_webhook(unknown_id).is_err());
    }

    #[test]
    fn each_object_is_polled_at_its_own_path() {
        let path = |id: &str| OpenAi.poll_request(id).expect("request").path;
        assert_eq!(path("batch_1"), ["batches", "batch_1"]);
        assert_eq!(path("resp_1"), ["responses", "resp_1"]);
        assert_eq!(path("ftjob-1"), ["fine_tuning", "jobs", "ftjob-1"]);
        assert!(OpenAi.poll_request("file-1").is_err());
    }

    #[test]
    fn documented_answers_map_with_their_results_and_reasons() {
        let done = OpenAi
            .parse_poll(&fixture("get-batch-completed.json"))
            .expect("completed");
        assert_eq!(done.status, JobStatus::Completed);
        let result: Value = serde_json::from_str(done.result.as_deref().expect("result")).expect("json");
        assert_eq!(result["output_file_id"], "file-cvaTdG");
        assert_eq!(result["error_file_id"], "file-HOWS94");
        assert_eq!(done.updated_at.map(|t| t.unix_timestamp()), Some(1711493163));

        let running = OpenAi
            .parse_poll(&fixture("get-batch-in-progress.json"))
            .expect("in progress");
        assert_eq!((running.status, running.progress), (JobStatus::Processing, Some(40)));
        assert_eq!(running.result, None, "no result before the end");

        let expired = OpenAi.parse_poll(&fixture("get-batch-expired.json")).expect("expired");
        assert_eq!(expired.status, JobStatus::Failed);
        assert!(expired.error.as_deref().is_some_and(|e| e.starts_with("expired")));

        let incomplete = OpenAi
            .parse_poll(&fixture("get-response-incomplete.json"))
            .expect("incomplete");
        assert_eq!(incomplete.status, JobStatus::Failed);
        assert_eq!(incomplete.error.as_deref(), Some("incomplete: max_output_tokens"));

        let cancelled = OpenAi
            .parse_poll(&fixture("get-fine-tuning-cancelled.json"))
            .expect("cancelled");
        assert_eq!(cancelled.status, JobStatus::Canceled);
    }

    fn poll(answer: serde_json::Value) -> PollAnswer {
        OpenAi.parse_poll(answer.to_string().as_bytes()).expect("an answer")
    }

    /// A failed job's error is its `code: message`, for each shape the API
    /// reference gives: a batch's `errors` list, a response's or a
    /// fine-tuning job's `error` object.
    #[test]
    fn a_failed_job_s_error_is_its_code_and_message() {
        let batch = poll(
            serde_json::json!({"id": "batch_1", "object": "batch", "status": "failed",
            "errors": {"object": "list", "data": [
                {"code": "invalid_json_line", "message": "line 3 is not JSON", "line": 3},
                {"code": "too_many_tasks", "message": "over the limit"}]}}),
        );
        assert_eq!(
            batch.error.as_deref(),
            Some("invalid_json_line: line 3 is not JSON; too_many_tasks: over the limit")
        );
        let response = poll(
            serde_json::json!({"id": "resp_1", "object": "response", "status": "failed",
            "error": {"code": "server_error", "message": "try again"}}),
        );
        assert_eq!(response.error.as_deref(), Some("server_error: try again"));
        let error_of = |error: serde_json::Value| {
            poll(serde_json::json!({"id": "ftjob-1", "object": "fine_tuning.job", "status": "failed", "error": error}))
                .error
        };
        assert_eq!(
            error_of(serde_json::json!({"code": "invalid_file", "message": null})).as_deref(),
            Some("invalid_file")
        );
        assert_eq!(
            error_of(serde_json::json!({"message": "bad rows"})).as_deref(),
            Some("bad rows")
        );
        assert_eq!(error_of(serde_json::json!("plain text")).as_deref(), Some("plain text"));
        assert_eq!(error_of(serde_json::json!({"param": "x"})), None);
        assert_eq!(error_of(serde_json::json!({"object": "list", "data": []})), None);
        assert_eq!(error_of(serde_json::json!(42)), None);
    }

    #[test]
    fn a_job_not_yet_started_is_submitted_and_a_batch_s_progress_is_its_finished_share() {
        for (object, status) in [
            ("batch", "validating"),
            ("response", "queued"),
            ("fine_tuning.job", "validating_files"),
            ("fine_tuning.job", "queued"),
        ] {
            let answer = poll(serde_json::json!({"id": "x", "object": object, "status": status}));
            assert_eq!(answer.status, JobStatus::Submitted, "{object} {status}");
        }
        let progress = |counts: serde_json::Value| {
            poll(
                serde_json::json!({"id": "batch_1", "object": "batch", "status": "in_progress",
                "request_counts": counts}),
            )
            .progress
        };
        assert_eq!(
            progress(serde_json::json!({"total": 4, "completed": 1, "failed": 1})),
            Some(50)
        );
        assert_eq!(
            progress(serde_json::json!({"total": 0, "completed": 0, "failed": 0})),
            None
        );
        assert_eq!(progress(serde_json::json!({"total": 2, "completed": 3})), Some(100));
    }

    #[test]
    fn only_a_running_batch_has_progress_and_openai_is_polled_at_its_public_api() {
        let counts = serde_json::json!({"total": 4, "completed": 3, "failed": 0});
        let done = poll(
            serde_json::json!({"id": "batch_1", "object": "batch", "status": "completed",
            "request_counts": counts}),
        );
        assert_eq!(done.progress, None);
        let running = poll(
            serde_json::json!({"id": "batch_1", "object": "batch", "status": "in_progress",
            "request_counts": counts}),
        );
        assert_eq!(running.progress, Some(75));
        assert_eq!(OpenAi.api_defaults().base_url, Some("https://api.openai.com/v1"));
    }
}
