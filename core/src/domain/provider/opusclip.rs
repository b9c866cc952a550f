//! OpusClip (help.opus.pro/api-reference): a webhook is set per clip project
//! (`conclusionActions: [{"type": "WEBHOOK", "url": …, "notifyFailure": true}]`)
//! and sent once the project concludes, signed by jobhook's `opusclip`
//! scheme. Its body has no documented schema, so the profile treats it as a
//! trigger: it takes the project id (`projectId`, else `id`, at the top or
//! under `data`) and reads the project from `GET /api/clip-projects/{id}`,
//! and when the project is `COMPLETE`, its clips from
//! `GET /api/exportable-clips?q=findByProjectId&projectId={id}` (a bare
//! array; some official tooling reads `{"data": […]}`, so both are taken).
//!
//! Stages run PENDING, QUEUED (submitted), IMPORT, CURATE, REFINE, RENDER,
//! UPLOAD (processing, ranked as progress), COMPLETE (completed) and STALLED
//! (failed, with the project's `error`). The API allows about 30 requests a
//! minute per key, so the reconciler's default budget for a source is small.

use serde_json::{Map, Value};

use super::generic::{err, id_string, json_object, parse_time};
use super::{ApiDefaults, ApiRequest, PayloadError, PollAnswer, ProviderProfile, WebhookPayload, MAX_RESULT_BYTES};
use crate::domain::job::JobStatus;

#[derive(Debug, Clone, Copy, Default)]
pub struct OpusClip;

const MAX_URL_LEN: usize = 4096;

/// A stage as the job model knows it, with its place among the stages that
/// come before `COMPLETE` as progress.
fn stage(text: &str) -> Option<(JobStatus, Option<u8>)> {
    Some(match text {
        "PENDING" | "QUEUED" => (JobStatus::Submitted, None),
        "IMPORT" => (JobStatus::Processing, Some(10)),
        "CURATE" => (JobStatus::Processing, Some(30)),
        "REFINE" => (JobStatus::Processing, Some(50)),
        "RENDER" => (JobStatus::Processing, Some(70)),
        "UPLOAD" => (JobStatus::Processing, Some(90)),
        "COMPLETE" => (JobStatus::Completed, None),
        "STALLED" => (JobStatus::Failed, None),
        _ => return None,
    })
}

/// The project id a trigger names.
fn project_id(root: &Map<String, Value>) -> Result<Option<String>, PayloadError> {
    let nested = root.get("data").and_then(Value::as_object);
    for (object, prefix) in [(Some(root), ""), (nested, "data.")] {
        let Some(object) = object else { continue };
        for key in ["projectId", "id"] {
            if let Some(id) = id_string(object.get(key), &format!("{prefix}{key}"))? {
                return Ok(Some(id));
            }
        }
    }
    Ok(None)
}

fn url(value: Option<&Value>) -> Option<&str> {
    value?
        .as_str()
        .filter(|s| s.starts_with("https://") && s.len() <= MAX_URL_LEN)
}

impl ProviderProfile for OpusClip {
    fn name(&self) -> &'static str {
        "opusclip"
    }

    fn parse_webhook(&self, body: &[u8]) -> Result<WebhookPayload, PayloadError> {
        let root = json_object(body, "body")?;
        let job_id = project_id(&root)?.ok_or_else(|| err("the body names no project (\"projectId\" or \"id\")"))?;
        // What the body announces, if it says: the fetch must show at least
        // that, else the API has not caught up and the delivery is retried.
        let announced = root.get("stage").and_then(Value::as_str).and_then(stage);
        Ok(WebhookPayload {
            id: None,
            job_id,
            kind: "project.concluded".into(),
            status: announced.map_or(JobStatus::Submitted, |(status, _)| status),
            progress: None,
            output_url: None,
            error: None,
            result: None,
            provider_time: None,
            fetch: true,
        })
    }

    fn poll_request(&self, job_id: &str) -> Result<ApiRequest, PayloadError> {
        Ok(ApiRequest::path(&["clip-projects", job_id]))
    }

    fn parse_poll(&self, body: &[u8]) -> Result<PollAnswer, PayloadError> {
        let root = json_object(body, "answer")?;
        let (status, progress) = root
            .get("stage")
            .and_then(Value::as_str)
            .and_then(stage)
            .ok_or_else(|| err("field \"stage\" must be one of OpusClip's project stages"))?;
        let error = (status == JobStatus::Failed).then(|| match root.get("error") {
            Some(Value::String(e)) if !e.is_empty() => format!("STALLED: {e}"),
            _ => "STALLED".to_owned(),
        });
        Ok(PollAnswer {
            status,
            progress,
            output_url: None,
            error,
            result: None,
            // A time that does not parse is left out rather than refusing the state.
            updated_at: parse_time(root.get("updatedAt"), "updatedAt").ok().flatten(),
        })
    }

    fn follow_up(&self, job_id: &str, answer: &PollAnswer) -> Option<ApiRequest> {
        (answer.status == JobStatus::Completed).then(|| ApiRequest {
            path: vec!["exportable-clips".into()],
            query: vec![("q", "findByProjectId".into()), ("projectId", job_id.to_owned())],
        })
    }

    /// `result`: `{"project_id", "clip_count", "clips": [{"id", "title",
    /// "duration_ms", "url"}]}`, as many clips as fit; `output_url` is the
    /// first clip's export (else preview) URL.
    fn parse_follow_up(&self, job_id: &str, mut answer: PollAnswer, body: &[u8]) -> Result<PollAnswer, PayloadError> {
        let doc: Value = serde_json::from_slice(body).map_err(|e| {
            err(format!(
                "clips answer is not JSON (line {} column {})",
                e.line(),
                e.column()
            ))
        })?;
        let clips = match &doc {
            Value::Array(list) => list,
            Value::Object(o) => o
                .get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| err("clips answer must be an array or {\"data\": [...]}"))?,
            _ => return Err(err("clips answer must be an array or {\"data\": [...]}")),
        };
        let result_of = |kept: &[Value]| {
            serde_json::json!({"project_id": job_id, "clip_count": clips.len(), "clips": kept}).to_string()
        };
        // The clips that fit, in order: the result's exact size is the empty
        // list's plus each clip's and a comma between two.
        let mut size = result_of(&[]).len();
        let mut kept = Vec::new();
        for clip in clips {
            let Some(clip) = clip.as_object() else { continue };
            let entry = serde_json::json!({
                "id": clip.get("id").and_then(Value::as_str),
                "title": clip.get("title").and_then(Value::as_str).map(|t| t.chars().take(200).collect::<String>()),
                "duration_ms": clip.get("durationMs").and_then(Value::as_u64),
                "url": url(clip.get("uriForExport")).or(url(clip.get("uriForPreview"))),
            });
            let grown = size + entry.to_string().len() + usize::from(!kept.is_empty());
            if grown > MAX_RESULT_BYTES {
                break;
            }
            size = grown;
            kept.push(entry);
        }
        answer.output_url = kept.first().and_then(|c| c["url"].as_str()).map(str::to_owned);
        answer.result = Some(result_of(&kept));
        Ok(answer)
    }

    fn api_defaults(&self) -> ApiDefaults {
        ApiDefaults {
            base_url: Some("https://api.opus.pro/api"),
            // About 30 requests a minute per key, a finished project costs
            // two, and the user's own calls share the key.
            max_polls_per_run: Some(10),
            ..super::Generic.api_defaults()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        crate::domain::provider::fixture("opusclip", name)
    }

    #[test]
    fn a_delivery_is_a_trigger_naming_the_project() {
        let p = OpusClip
            .parse_webhook(&fixture("webhook-concluded.json"))
            .expect("trigger");
        assert_eq!(p.job_id, "P1111908HgB0");
        assert!(p.fetch);
        assert_eq!(p.status, JobStatus::Completed, "the stage it announces");
        let bare = OpusClip.parse_webhook(br#"{"data":{"id":"P2"}}"#).expect("nested id");
        assert_eq!((bare.job_id.as_str(), bare.status), ("P2", JobStatus::Submitted));
        assert!(OpusClip.parse_webhook(br#"{"stage":"COMPLETE"}"#).is_err());
    }

    #[test]
    fn stages_rank_in_order_and_stalled_is_a_failure_with_its_error() {
        let order = ["PENDING", "IMPORT", "CURATE", "REFINE", "RENDER", "UPLOAD", "COMPLETE"];
        let ranks: Vec<(u8, u8)> = order
            .iter()
            .map(|s| stage(s).map(|(st, p)| (st.rank(), p.unwrap_or(0))).expect("known"))
            .collect();
        assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{ranks:?}");

        let queued = OpusClip
            .parse_poll(&fixture("get-project-queued.json"))
            .expect("queued");
        assert_eq!(queued.status, JobStatus::Submitted);
        let stalled = OpusClip
            .parse_poll(&fixture("get-project-stalled.json"))
            .expect("stalled");
        assert_eq!(stalled.status, JobStatus::Failed);
        assert_eq!(stalled.error.as_deref(), Some("STALLED: Failed to import video"));
        assert!(
            OpusClip.follow_up("P", &stalled).is_none(),
            "no clips for a failed project"
        );
    }

    #[test]
    fn a_complete_project_lists_its_clips_in_the_result() {
        let done = OpusClip
            .parse_poll(&fixture("get-project-complete.json"))
            .expect("complete");
        let request = OpusClip.follow_up("Q1111307CTmI", &done).expect("clips request");
        assert_eq!(request.path, ["exportable-clips"]);
        assert_eq!(
            request.query,
            [
                ("q", "findByProjectId".to_owned()),
                ("projectId", "Q1111307CTmI".to_owned())
            ]
        );
        let answer = OpusClip
            .parse_follow_up("Q1111307CTmI", done, &fixture("get-exportable-clips.json"))
            .expect("clips");
        assert!(answer
            .output_url
            .as_deref()
            .is_some_and(|u| u.ends_with("ehd.mp4?v=1731482302564330")));
        let result: Value = serde_json::from_str(answer.result.as_deref().expect("result")).expect("json");
        assert_eq!(result["clip_count"], 2);
        assert_eq!(result["clips"][0]["duration_ms"], 19478);
        assert!(result["clips"][0]["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("Connect")));

        // Both shapes of the list are read.
        let wrapped = format!(
            "{{\"data\":{}}}",
            String::from_utf8(fixture("get-exportable-clips.json")).expect("utf8")
        );
        let done = OpusClip
            .parse_poll(&fixture("get-project-complete.json"))
            .expect("complete");
        let answer = OpusClip
            .parse_follow_up("Q1111307CTmI", done, wrapped.as_bytes())
            .expect("wrapped");
        assert!(answer.output_url.is_some());
    }

    #[test]
    fn many_clips_stay_within_the_result_bound() {
        let clip = serde_json::json!({"id": "P.C", "title": "t".repeat(300), "durationMs": 1000,
            "uriForExport": format!("https://ext.cdn.opus.pro/{}", "x".repeat(200))});
        let body = Value::from(vec![clip; 200]).to_string();
        let done = PollAnswer::bare(JobStatus::Completed, None);
        let answer = OpusClip.parse_follow_up("P", done, body.as_bytes()).expect("clips");
        let text = answer.result.expect("result");
        assert!(text.len() <= MAX_RESULT_BYTES, "{}", text.len());
        let mut result: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(result["clip_count"], 200);
        let clips = result["clips"].as_array_mut().expect("clips");
        assert!(!clips.is_empty() && clips.len() < 200, "{}", clips.len());
        // As many as fit: one more would not.
        let one_more = clips[0].clone();
        clips.push(one_more);
        assert!(result.to_string().len() > MAX_RESULT_BYTES);
    }

    #[test]
    fn a_clip_s_url_is_https_and_at_most_4096_bytes_and_a_stall_names_its_error() {
        let done = PollAnswer::bare(JobStatus::Completed, None);
        let first_url = |uri: String| {
            let body = serde_json::json!([{"id": "P.C", "uriForExport": uri}]).to_string();
            OpusClip
                .parse_follow_up("P", done.clone(), body.as_bytes())
                .expect("clips")
                .output_url
        };
        assert_eq!(
            first_url("https://cdn.opus.pro/c.mp4".into()).as_deref(),
            Some("https://cdn.opus.pro/c.mp4")
        );
        assert_eq!(first_url("http://cdn.opus.pro/c.mp4".into()), None);
        assert_eq!(first_url(format!("https://cdn.opus.pro/{}", "x".repeat(4096))), None);

        let stalled = |error: Value| {
            let body = serde_json::json!({"projectId": "P", "stage": "STALLED", "error": error}).to_string();
            OpusClip.parse_poll(body.as_bytes()).expect("answer").error
        };
        assert_eq!(
            stalled(Value::from("no faces found")).as_deref(),
            Some("STALLED: no faces found")
        );
        assert_eq!(stalled(Value::from("")).as_deref(), Some("STALLED"));
    }

    /// About 30 requests a minute per key, two per finished project.
    #[test]
    fn opusclip_is_polled_at_its_public_api_ten_projects_a_run_at_most() {
        let defaults = OpusClip.api_defaults();
        assert_eq!(defaults.base_url, Some("https://api.opus.pro/api"));
        assert_eq!(defaults.max_polls_per_run, Some(10));
    }

    /// The cut is exact: some padding of the last clip makes a result of
    /// exactly the bound with all three clips, and none ever goes over it.
    #[test]
    fn clips_fill_the_result_to_the_byte_and_never_past_it() {
        let done = PollAnswer::bare(JobStatus::Completed, None);
        let clip = |n: usize| serde_json::json!({"id": "c", "uriForExport": format!("https://x/{}", "a".repeat(n))});
        let mut exact = false;
        for pad in 0..600 {
            let body = Value::from(vec![clip(2_600), clip(2_600), clip(2_600 + pad)]).to_string();
            let text = OpusClip
                .parse_follow_up("P", done.clone(), body.as_bytes())
                .expect("clips")
                .result
                .expect("result");
            assert!(text.len() <= MAX_RESULT_BYTES, "pad {pad}: {}", text.len());
            let kept = serde_json::from_str::<Value>(&text).expect("json")["clips"]
                .as_array()
                .map_or(0, Vec::len);
            exact |= kept == 3 && text.len() == MAX_RESULT_BYTES;
        }
        assert!(exact, "no padding filled the result exactly");
    }
}
