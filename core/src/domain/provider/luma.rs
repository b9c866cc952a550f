//! Luma's Dream Machine API (docs.lumalabs.ai, "Callbacks"): a generation
//! created with a `callback_url` is posted there, whole, on every update:
//! `{"id", "state", "failure_reason", "assets": {"video", "image"}, …}`,
//! the object `GET {base_url}/generations/{id}` answers. Luma signs
//! nothing, so a Luma source is `unsigned`: each delivery is a trigger to
//! read the generation, and many updates of one generation in a batch cost
//! one read.
//!
//! `state` is `queued`, `dreaming`, `completed` or `failed`.

use serde_json::{Map, Value};

use super::generic::{err, id_string, parse_time};
use super::{bounded_result, ApiDefaults, ApiRequest, PayloadError, PollAnswer, ProviderProfile, WebhookPayload};
use crate::domain::job::JobStatus;

#[derive(Debug, Clone, Copy, Default)]
pub struct Luma;

const MAX_URL_LEN: usize = 4096;

fn generation(body: &[u8], what: &str) -> Result<(String, String, PollAnswer), PayloadError> {
    let root: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(root)) => root,
        Ok(_) => return Err(err(format!("{what} must be a generation object"))),
        Err(e) => {
            return Err(err(format!(
                "{what} is not JSON (line {} column {})",
                e.line(),
                e.column()
            )))
        }
    };
    let id = id_string(root.get("id"), "id")?.ok_or_else(|| err("field \"id\" (the generation id) is required"))?;
    let state = root.get("state").and_then(Value::as_str).unwrap_or_default().to_owned();
    let status = match state.as_str() {
        "queued" => JobStatus::Submitted,
        "dreaming" => JobStatus::Processing,
        "completed" => JobStatus::Completed,
        "failed" => JobStatus::Failed,
        _ => return Err(err("field \"state\" must be queued, dreaming, completed or failed")),
    };
    let assets = root.get("assets").cloned().unwrap_or(Value::Null);
    let asset = |name: &str| {
        assets
            .get(name)
            .and_then(Value::as_str)
            .filter(|u| u.starts_with("https://") && u.len() <= MAX_URL_LEN)
            .map(str::to_owned)
    };
    let completed = status == JobStatus::Completed;
    let answer = PollAnswer {
        status,
        progress: None,
        output_url: completed.then(|| asset("video").or_else(|| asset("image"))).flatten(),
        error: (status == JobStatus::Failed).then(|| {
            root.get("failure_reason")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
                .unwrap_or("failed")
                .to_owned()
        }),
        result: completed
            .then(|| {
                let mut fields = Map::new();
                fields.insert("id".into(), Value::from(id.clone()));
                for name in ["assets", "model"] {
                    if let Some(value) = root.get(name) {
                        fields.insert(name.into(), value.clone());
                    }
                }
                bounded_result(fields)
            })
            .flatten(),
        updated_at: parse_time(root.get("created_at"), "created_at")?,
    };
    Ok((id, state, answer))
}

impl ProviderProfile for Luma {
    fn name(&self) -> &'static str {
        "luma"
    }

    fn parse_webhook(&self, body: &[u8]) -> Result<WebhookPayload, PayloadError> {
        let (id, state, answer) = generation(body, "body")?;
        Ok(WebhookPayload {
            id: None,
            job_id: id,
            kind: format!("generation.{state}"),
            status: answer.status,
            progress: None,
            output_url: answer.output_url,
            error: answer.error,
            result: answer.result,
            provider_time: answer.updated_at,
            fetch: false,
        })
    }

    fn poll_request(&self, job_id: &str) -> Result<ApiRequest, PayloadError> {
        Ok(ApiRequest::path(&["generations", job_id]))
    }

    fn parse_poll(&self, body: &[u8]) -> Result<PollAnswer, PayloadError> {
        generation(body, "answer").map(|(_, _, answer)| answer)
    }

    fn api_defaults(&self) -> ApiDefaults {
        ApiDefaults {
            base_url: Some("https://api.lumalabs.ai/dream-machine/v1"),
            ..super::Generic.api_defaults()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        crate::domain::provider::fixture("luma", name)
    }

    #[test]
    fn each_update_of_a_generation_maps_its_state_and_a_completed_one_names_its_video() {
        let done = Luma
            .parse_webhook(&fixture("webhook-completed.json"))
            .expect("completed");
        assert_eq!(done.job_id, "123e4567-e89b-12d3-a456-426614174000");
        assert_eq!(
            (done.status, done.kind.as_str()),
            (JobStatus::Completed, "generation.completed")
        );
        assert_eq!(
            done.output_url.as_deref(),
            Some("https://storage.cdn-luma.com/dream_machine/sample/video.mp4")
        );
        let dreaming = Luma.parse_poll(&fixture("webhook-dreaming.json")).expect("dreaming");
        assert_eq!((dreaming.status, dreaming.output_url), (JobStatus::Processing, None));
        let failed = Luma.parse_webhook(&fixture("webhook-failed.json")).expect("failed");
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(
            failed.error.as_deref(),
            Some("400: prompt not allowed because advanced moderation failed")
        );
        let queued = Luma.parse_poll(br#"{"id":"g","state":"queued"}"#).expect("queued");
        assert_eq!(queued.status, JobStatus::Submitted);
        assert_eq!(Luma.poll_request("g").expect("request").path, ["generations", "g"]);
        assert_eq!(
            Luma.api_defaults().base_url,
            Some("https://api.lumalabs.ai/dream-machine/v1")
        );
        for (body, field) in [
            (r#"{"id":"g","state":"done"}"#, "state"),
            (r#"{"state":"queued"}"#, "\"id\""),
        ] {
            let e = Luma.parse_webhook(body.as_bytes()).expect_err(body);
            assert!(e.to_string().contains(field), "{body}: {e}");
        }
    }
}
