//! Cloudflare Stream (developers.cloudflare.com/stream/manage-video-library/
//! using-webhooks): once a video is ready to stream, or fails, Cloudflare
//! posts the video object to the account's one webhook URL, signed with its
//! secret (the `cloudflare-stream` scheme). The same object answers
//! `GET {base_url}/stream/{uid}` (the base is
//! `https://api.cloudflare.com/client/v4/accounts/{account_id}`), wrapped in
//! `{"success", "result"}`.
//!
//! `status.state` is `pendingupload`, `downloading`, `queued`,
//! `inprogress`, `ready` or `error`; `pctComplete` comes as a number or a
//! string ("39.000000"); the error's reason is `errReasonCode` and
//! `errReasonText` in webhooks and `errorReasonCode`/`errorReasonText` in
//! the API's objects, so both spellings are read.

use serde_json::{Map, Value};

use super::generic::{err, id_string};
use super::{bounded_result, ApiDefaults, ApiRequest, PayloadError, PollAnswer, ProviderProfile, WebhookPayload};
use crate::domain::job::JobStatus;

#[derive(Debug, Clone, Copy, Default)]
pub struct CloudflareStream;

/// Cloudflare's API takes 1,200 requests per 5 minutes per user, across
/// the dashboard and every token: a run's polls leave most of it.
const MAX_POLLS_PER_RUN: usize = 100;
const MAX_URL_LEN: usize = 4096;

fn status_of(state: &str) -> Option<JobStatus> {
    Some(match state {
        "pendingupload" | "downloading" | "queued" => JobStatus::Submitted,
        "inprogress" => JobStatus::Processing,
        "ready" => JobStatus::Completed,
        "error" => JobStatus::Failed,
        _ => return None,
    })
}

/// `pctComplete` as a whole percentage, from a number or a decimal string.
fn percent(value: Option<&Value>) -> Option<u8> {
    let pct = match value? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    (0.0..=100.0).contains(&pct).then(|| pct.floor() as u8)
}

fn text<'a>(status: &'a Value, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| status.get(*n).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
}

/// The video, understood: `uid` and the answer its state gives.
fn video(root: &Map<String, Value>) -> Result<(String, String, PollAnswer), PayloadError> {
    let uid = id_string(root.get("uid"), "uid")?.ok_or_else(|| err("field \"uid\" (the video's id) is required"))?;
    let status = root.get("status").cloned().unwrap_or(Value::Null);
    let state = status
        .get("state")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let job_status = status_of(&state).ok_or_else(|| {
        err("field \"status.state\" must be pendingupload, downloading, queued, inprogress, ready or error")
    })?;
    let error = (job_status == JobStatus::Failed).then(|| {
        let code = text(&status, &["errReasonCode", "errorReasonCode"]);
        let reason = text(&status, &["errReasonText", "errorReasonText"]);
        match (code, reason) {
            (Some(code), Some(reason)) => format!("{code}: {reason}"),
            (one, other) => one.or(other).unwrap_or("error").to_owned(),
        }
    });
    let hls = root
        .get("playback")
        .and_then(|p| p.get("hls"))
        .and_then(Value::as_str)
        .filter(|u| u.starts_with("https://") && u.len() <= MAX_URL_LEN)
        .map(str::to_owned);
    let completed = job_status == JobStatus::Completed;
    let result = completed
        .then(|| {
            let mut fields = Map::new();
            fields.insert("uid".into(), Value::from(uid.clone()));
            for name in ["playback", "duration", "thumbnail", "preview", "size", "input"] {
                if let Some(value) = root.get(name) {
                    fields.insert(name.into(), value.clone());
                }
            }
            bounded_result(fields)
        })
        .flatten();
    let answer = PollAnswer {
        status: job_status,
        // A ready video is whole whatever its last figure said.
        progress: match job_status {
            JobStatus::Processing => percent(status.get("pctComplete")),
            _ => None,
        },
        output_url: if completed { hls } else { None },
        error,
        result,
        updated_at: super::generic::parse_time(root.get("modified"), "modified")?,
    };
    Ok((uid, state, answer))
}

fn object(body: &[u8], what: &str) -> Result<Map<String, Value>, PayloadError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(root)) => Ok(root),
        Ok(_) => Err(err(format!("{what} must be a video object"))),
        Err(e) => Err(err(format!(
            "{what} is not JSON (line {} column {})",
            e.line(),
            e.column()
        ))),
    }
}

impl ProviderProfile for CloudflareStream {
    fn name(&self) -> &'static str {
        "cloudflare-stream"
    }

    fn parse_webhook(&self, body: &[u8]) -> Result<WebhookPayload, PayloadError> {
        let (uid, state, answer) = video(&object(body, "body")?)?;
        Ok(WebhookPayload {
            // The uid names the video; the delivery is known by its hash.
            id: None,
            job_id: uid,
            kind: format!("video.{state}"),
            status: answer.status,
            progress: answer.progress,
            output_url: answer.output_url,
            error: answer.error,
            result: answer.result,
            provider_time: answer.updated_at,
            fetch: false,
        })
    }

    fn poll_request(&self, job_id: &str) -> Result<ApiRequest, PayloadError> {
        Ok(ApiRequest::path(&["stream", job_id]))
    }

    fn parse_poll(&self, body: &[u8]) -> Result<PollAnswer, PayloadError> {
        let root = object(body, "answer")?;
        match root.get("result") {
            Some(Value::Object(video_object)) => video(video_object).map(|(_, _, answer)| answer),
            _ => Err(err("the answer has no \"result\" video object")),
        }
    }

    fn api_defaults(&self) -> ApiDefaults {
        ApiDefaults {
            // The account id is part of the base: there is no default.
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
        crate::domain::provider::fixture("cloudflare-stream", name)
    }

    #[test]
    fn a_ready_video_completes_with_its_hls_playback_and_an_errored_one_fails_with_its_reason() {
        let ready = CloudflareStream
            .parse_webhook(&fixture("webhook-ready.json"))
            .expect("ready");
        assert_eq!(ready.job_id, "6b9e68b07dfee8cc2d116e4c51d6a957");
        assert_eq!(
            (ready.status, ready.kind.as_str(), ready.progress),
            (JobStatus::Completed, "video.ready", None)
        );
        assert_eq!(
            ready.output_url.as_deref(),
            Some("https://customer-f33zs165nr7gyfy4.cloudflarestream.com/6b9e68b07dfee8cc2d116e4c51d6a957/manifest/video.m3u8")
        );
        let result: Value = serde_json::from_str(ready.result.as_deref().expect("result")).expect("JSON");
        assert_eq!(result["duration"], 5.5);
        assert!(ready.provider_time.is_some());
        let failed = CloudflareStream
            .parse_webhook(&fixture("webhook-error.json"))
            .expect("error");
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(
            failed.error.as_deref(),
            Some("ERR_MALFORMED_VIDEO: The video was deemed to be corrupted or malformed.")
        );
        assert_eq!((failed.output_url, failed.result), (None, None));
    }

    #[test]
    fn the_api_s_video_is_read_with_its_progress_and_every_state_maps() {
        let running = CloudflareStream
            .parse_poll(&fixture("get-video-inprogress.json"))
            .expect("answer");
        assert_eq!((running.status, running.progress), (JobStatus::Processing, Some(51)));
        assert_eq!(running.output_url, None, "not ready: no output yet");
        for (state, status) in [
            ("pendingupload", JobStatus::Submitted),
            ("downloading", JobStatus::Submitted),
            ("queued", JobStatus::Submitted),
            ("inprogress", JobStatus::Processing),
            ("ready", JobStatus::Completed),
            ("error", JobStatus::Failed),
        ] {
            let body = serde_json::json!({"result": {"uid": "v1", "status": {"state": state, "pctComplete": "12.5"}}});
            let answer = CloudflareStream.parse_poll(body.to_string().as_bytes()).expect(state);
            assert_eq!(answer.status, status, "{state}");
        }
        assert_eq!(
            CloudflareStream.poll_request("v1").expect("request").path,
            ["stream", "v1"]
        );
        for (body, field) in [
            (r#"{"uid":"v","status":{"state":"done"}}"#, "status.state"),
            (r#"{"status":{"state":"ready"}}"#, "\"uid\""),
        ] {
            let e = CloudflareStream.parse_webhook(body.as_bytes()).expect_err(body);
            assert!(e.to_string().contains(field), "{body}: {e}");
        }
        assert!(CloudflareStream
            .parse_poll(br#"{"success":false,"result":null}"#)
            .is_err());
    }
}
