//! RunPod Serverless (docs.runpod.io, "Send requests" and "Job states"): a
//! job submitted to `POST /v2/{endpoint}/run` with a `webhook` URL is
//! announced there with "the same information as the `/status/{job_id}`
//! endpoint" once it ends: `id`, `status`, and `output` or `error`, with
//! `delayTime` and `executionTime` in milliseconds. RunPod signs nothing,
//! so a RunPod source is `unsigned`: the delivery only says "look now", and
//! what is applied is the answer of `GET /v2/{endpoint}/status/{id}` (the
//! source's `api.base_url` is `https://api.runpod.ai/v2/{endpoint}`).
//!
//! `status` is `IN_QUEUE`, `IN_PROGRESS` (the job-states page also says
//! `RUNNING`), `COMPLETED`, `FAILED`, `CANCELLED` or `TIMED_OUT`; the last
//! four are final, as runpod-python's helpers treat them.

use serde_json::{Map, Value};

use super::generic::{err, id_string, parse_error};
use super::{bounded_result, ApiDefaults, ApiRequest, PayloadError, PollAnswer, ProviderProfile, WebhookPayload};
use crate::domain::job::JobStatus;

#[derive(Debug, Clone, Copy, Default)]
pub struct RunPod;

/// `GET /status` takes 2,000 requests per 10 s per endpoint: a run's polls
/// stay far below it, beside the application's own calls.
const MAX_POLLS_PER_RUN: usize = 500;

fn status_of(text: &str) -> Option<JobStatus> {
    Some(match text {
        "IN_QUEUE" => JobStatus::Submitted,
        "IN_PROGRESS" | "RUNNING" => JobStatus::Processing,
        "COMPLETED" => JobStatus::Completed,
        // Expired before a worker took it, or its worker stopped reporting.
        "FAILED" | "TIMED_OUT" => JobStatus::Failed,
        "CANCELLED" => JobStatus::Canceled,
        _ => return None,
    })
}

struct Job {
    id: String,
    raw_status: String,
    answer: PollAnswer,
}

fn parse(body: &[u8], what: &str) -> Result<Job, PayloadError> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| err(format!("{what} is not JSON (line {} column {})", e.line(), e.column())))?;
    let Value::Object(root) = doc else {
        return Err(err(format!("{what} must be a job object")));
    };
    let id = id_string(root.get("id"), "id")?.ok_or_else(|| err("field \"id\" (the job id) is required"))?;
    let raw_status = root
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let status = status_of(&raw_status).ok_or_else(|| {
        err("field \"status\" must be IN_QUEUE, IN_PROGRESS, RUNNING, COMPLETED, FAILED, CANCELLED or TIMED_OUT")
    })?;
    let mut error = parse_error(root.get("error"))?;
    if raw_status == "TIMED_OUT" && error.is_none() {
        error = Some("TIMED_OUT".into());
    }
    // The worker's output, whatever its shape (bounded), and RunPod's timings.
    let result = (status == JobStatus::Completed)
        .then(|| {
            let mut fields = Map::new();
            for name in ["output", "delayTime", "executionTime"] {
                if let Some(value) = root.get(name) {
                    fields.insert(name.into(), value.clone());
                }
            }
            bounded_result(fields)
        })
        .flatten();
    Ok(Job {
        id,
        raw_status,
        answer: PollAnswer {
            status,
            progress: None,
            // A worker's output has no fixed shape: where a file is, the
            // result says.
            output_url: None,
            error,
            result,
            updated_at: None,
        },
    })
}

impl ProviderProfile for RunPod {
    fn name(&self) -> &'static str {
        "runpod"
    }

    fn parse_webhook(&self, body: &[u8]) -> Result<WebhookPayload, PayloadError> {
        let Job { id, raw_status, answer } = parse(body, "body")?;
        Ok(WebhookPayload {
            id: None,
            job_id: id,
            kind: format!("job.{}", raw_status.to_ascii_lowercase()),
            status: answer.status,
            progress: answer.progress,
            output_url: answer.output_url,
            error: answer.error,
            result: answer.result,
            provider_time: None,
            fetch: false,
        })
    }

    fn poll_request(&self, job_id: &str) -> Result<ApiRequest, PayloadError> {
        Ok(ApiRequest::path(&["status", job_id]))
    }

    fn parse_poll(&self, body: &[u8]) -> Result<PollAnswer, PayloadError> {
        parse(body, "answer").map(|job| job.answer)
    }

    fn api_defaults(&self) -> ApiDefaults {
        ApiDefaults {
            // The endpoint's own id is part of the base: there is no default.
            base_url: None,
            max_polls_per_run: Some(MAX_POLLS_PER_RUN),
            ..super::Generic.api_defaults()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        crate::domain::provider::fixture("runpod", name)
    }

    #[test]
    fn every_documented_status_maps_onto_the_job_model() {
        for (status, expected) in [
            ("IN_QUEUE", JobStatus::Submitted),
            ("IN_PROGRESS", JobStatus::Processing),
            ("RUNNING", JobStatus::Processing),
            ("COMPLETED", JobStatus::Completed),
            ("FAILED", JobStatus::Failed),
            ("TIMED_OUT", JobStatus::Failed),
            ("CANCELLED", JobStatus::Canceled),
        ] {
            let body = serde_json::json!({"id": "j-1", "status": status}).to_string();
            let answer = RunPod
                .parse_poll(body.as_bytes())
                .unwrap_or_else(|e| panic!("{status}: {e}"));
            assert_eq!(answer.status, expected, "{status}");
            let payload = RunPod.parse_webhook(body.as_bytes()).expect(status);
            assert_eq!((payload.status, payload.job_id.as_str()), (expected, "j-1"));
        }
        let timed_out = RunPod
            .parse_poll(br#"{"id":"j-1","status":"TIMED_OUT"}"#)
            .expect("timed out");
        assert_eq!(timed_out.error.as_deref(), Some("TIMED_OUT"));
    }

    #[test]
    fn the_documented_deliveries_give_the_job_its_output_or_its_error() {
        let done = RunPod
            .parse_webhook(&fixture("webhook-completed.json"))
            .expect("completed");
        assert_eq!(done.job_id, "e4616554-495e-4e66-838b-c55f2ea7ecbc-e1");
        assert_eq!(done.kind, "job.completed");
        let result: Value = serde_json::from_str(done.result.as_deref().expect("result")).expect("JSON");
        assert_eq!(result["output"], serde_json::json!({"results": [{"success": true}]}));
        assert_eq!(result["executionTime"], 157);
        assert!(result.get("input").is_none(), "the job's input is not its result");
        let failed = RunPod.parse_webhook(&fixture("webhook-failed.json")).expect("failed");
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(failed.error.as_deref(), Some("Error message from your function"));
        assert_eq!(failed.result, None);
        let running = RunPod
            .parse_poll(&fixture("status-in-progress.json"))
            .expect("in progress");
        assert_eq!(running.status, JobStatus::Processing);
        assert_eq!(RunPod.poll_request("j-1").expect("request").path, ["status", "j-1"]);
    }

    #[test]
    fn unknown_statuses_and_bodies_without_an_id_are_refused_by_field() {
        for (body, field) in [
            (r#"{"id":"j","status":"DONE"}"#, "status"),
            (r#"{"status":"COMPLETED"}"#, "\"id\""),
            (r#"{"id":"","status":"COMPLETED"}"#, "\"id\""),
            (r#"[1]"#, "job object"),
        ] {
            let e = RunPod.parse_webhook(body.as_bytes()).expect_err(body);
            assert!(e.to_string().contains(field), "{body}: {e}");
        }
    }
}
