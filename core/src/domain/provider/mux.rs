//! Mux Video (docs.mux.com/webhook-reference, the get-asset API reference):
//! `mux-signature` (jobhook's `stripe` scheme with that header), no delivery
//! id (the body's `id` is the event's uuid, kept across retries), and the
//! asset at `object.id`/`data.id`. An asset is `preparing`, `ready` or
//! `errored`; events about anything else (uploads, live streams, tracks)
//! are acknowledged as not job events. `GET /video/v1/assets/{id}` answers
//! `{"data": {…}}` with HTTP Basic auth (`token_id:token_secret`); Mux
//! rate-limits it and asks for webhooks rather than polling.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::generic::{id_string, parse_time};
use super::{bounded_result, ApiDefaults, ApiRequest, PayloadError, PollAnswer, ProviderProfile, WebhookPayload};
use crate::domain::job::JobStatus;

#[derive(Debug, Clone, Copy, Default)]
pub struct Mux;

const MAX_ID_LEN: usize = 256;
/// The webhook types that move an asset, the job Mux runs.
const ASSET_EVENTS: &[&str] = &["video.asset.created", "video.asset.ready", "video.asset.errored"];

fn err(message: impl Into<String>) -> PayloadError {
    PayloadError(message.into())
}

fn object(doc: &Value, what: &str) -> Result<Map<String, Value>, PayloadError> {
    match doc {
        Value::Object(map) => Ok(map.clone()),
        _ => Err(err(format!("{what} must be a JSON object"))),
    }
}

/// An asset, understood: the same in webhooks and poll answers.
struct Asset {
    id: String,
    status: JobStatus,
    output_url: Option<String>,
    error: Option<String>,
    result: Option<String>,
}

fn asset(data: &Map<String, Value>) -> Result<Asset, PayloadError> {
    let id = match data.get("id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID_LEN && !s.chars().any(char::is_control) => {
            s.clone()
        }
        _ => return Err(err("field \"data.id\" (the asset id) must be a non-empty string")),
    };
    let status = match data.get("status").and_then(Value::as_str) {
        Some("preparing") => JobStatus::Processing,
        Some("ready") => JobStatus::Completed,
        Some("errored") => JobStatus::Failed,
        _ => return Err(err("field \"data.status\" must be preparing, ready or errored")),
    };
    // The HLS URL of the first public playback id (docs: "Play your videos").
    let output_url = (status == JobStatus::Completed)
        .then(|| {
            data.get("playback_ids")?
                .as_array()?
                .iter()
                .find(|p| p["policy"] == "public")
                .and_then(|p| p["id"].as_str())
                .filter(|id| id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric()))
                .map(|id| format!("https://stream.mux.com/{id}.m3u8"))
        })
        .flatten();
    let error = (status == JobStatus::Failed).then(|| {
        let errors = &data.get("errors").cloned().unwrap_or(Value::Null);
        let messages: Vec<&str> = errors["messages"]
            .as_array()
            .map(|m| m.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match (errors["type"].as_str(), messages.is_empty()) {
            (Some(kind), false) => format!("{kind}: {}", messages.join("; ")),
            (Some(kind), true) => kind.to_owned(),
            (None, false) => messages.join("; "),
            (None, true) => "errored".to_owned(),
        }
    });
    // Enough to play or fetch the asset: its playback ids and duration.
    let result = (status == JobStatus::Completed)
        .then(|| {
            let mut fields = Map::new();
            fields.insert("asset_id".into(), Value::from(id.clone()));
            for key in ["playback_ids", "duration", "aspect_ratio", "resolution_tier"] {
                if let Some(v) = data.get(key) {
                    fields.insert(key.into(), v.clone());
                }
            }
            bounded_result(fields)
        })
        .flatten();
    Ok(Asset {
        id,
        status,
        output_url,
        error,
        result,
    })
}

/// `created_at` is an RFC 3339 string on events, a unix-seconds string or
/// integer on assets; a time that reads as neither is left out rather than
/// refusing the event.
fn time_of(value: Option<&Value>) -> Option<OffsetDateTime> {
    let secs = match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse::<i64>().ok(),
        _ => None,
    };
    match secs {
        Some(secs) => OffsetDateTime::from_unix_timestamp(secs).ok(),
        None => parse_time(value, "created_at").ok().flatten(),
    }
}

fn parse_json(body: &[u8], what: &str) -> Result<Value, PayloadError> {
    serde_json::from_slice(body)
        .map_err(|e| err(format!("{what} is not JSON (line {} column {})", e.line(), e.column())))
}

impl ProviderProfile for Mux {
    fn name(&self) -> &'static str {
        "mux"
    }

    fn not_a_job_event(&self, body: &[u8]) -> Option<String> {
        let doc: Value = serde_json::from_slice(body).ok()?;
        let kind = doc.get("type")?.as_str()?;
        (!ASSET_EVENTS.contains(&kind)).then(|| format!("a Mux {kind} event is not about an asset's processing"))
    }

    fn parse_webhook(&self, body: &[u8]) -> Result<WebhookPayload, PayloadError> {
        let root = object(&parse_json(body, "body")?, "body")?;
        let kind = root.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
        if !ASSET_EVENTS.contains(&kind.as_str()) {
            return Err(err("field \"type\" must be video.asset.created, ready or errored"));
        }
        // The same id rule as every profile's: the id becomes a sort key and a log field.
        let event_id =
            id_string(root.get("id"), "id")?.ok_or_else(|| err("field \"id\" (the event id) is required"))?;
        let data = object(root.get("data").unwrap_or(&Value::Null), "field \"data\"")?;
        let asset = asset(&data)?;
        Ok(WebhookPayload {
            id: Some(event_id),
            job_id: asset.id,
            kind,
            status: asset.status,
            progress: None,
            output_url: asset.output_url,
            error: asset.error,
            result: asset.result,
            provider_time: time_of(root.get("created_at")),
            fetch: false,
        })
    }

    fn poll_request(&self, job_id: &str) -> Result<ApiRequest, PayloadError> {
        Ok(ApiRequest::path(&["video", "v1", "assets", job_id]))
    }

    fn parse_poll(&self, body: &[u8]) -> Result<PollAnswer, PayloadError> {
        let root = object(&parse_json(body, "answer")?, "answer")?;
        let data = object(root.get("data").unwrap_or(&Value::Null), "field \"data\"")?;
        let asset = asset(&data)?;
        Ok(PollAnswer {
            status: asset.status,
            progress: None,
            output_url: asset.output_url,
            error: asset.error,
            result: asset.result,
            updated_at: None,
        })
    }

    /// HTTP Basic with the access token's id and secret: `api.token` holds
    /// `token_id:token_secret`.
    fn authorization(&self, token: &str) -> String {
        format!("Basic {}", BASE64.encode(token))
    }

    fn api_defaults(&self) -> ApiDefaults {
        ApiDefaults {
            base_url: Some("https://api.mux.com"),
            // Mux rate-limits its API and asks for webhooks over polling:
            // polling is only the safety net here, so keep it small.
            max_polls_per_run: Some(50),
            ..super::Generic.api_defaults()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        crate::domain::provider::fixture("mux", name)
    }

    const ASSET: &str = "lJ4bGGsp7ZlPf02nMg015W02iHQLN9XnuuLRBsPS00xqd68";
    const HLS: &str = "https://stream.mux.com/vAFLI2eKFFicXX00iHBS2vqt5JjJGg5HV6fQ4Xijgt1I.m3u8";

    #[test]
    fn asset_events_map_onto_the_job_model() {
        let created = Mux
            .parse_webhook(&fixture("webhook-asset-created.json"))
            .expect("created");
        assert_eq!(
            (created.job_id.as_str(), created.status),
            (ASSET, JobStatus::Processing)
        );
        assert_eq!(created.output_url, None, "no URL before it is ready");
        assert_eq!(
            created.id.as_deref(),
            Some("3a56ac3d-33da-4366-855b-f592d898409d"),
            "the event's uuid"
        );
        let ready = Mux.parse_webhook(&fixture("webhook-asset-ready.json")).expect("ready");
        assert_eq!(
            (ready.status, ready.output_url.as_deref()),
            (JobStatus::Completed, Some(HLS))
        );
        assert!(ready.provider_time.is_some());
        let errored = Mux
            .parse_webhook(&fixture("webhook-asset-errored.json"))
            .expect("errored");
        assert_eq!(errored.status, JobStatus::Failed);
        assert_eq!(
            errored.error.as_deref(),
            Some("invalid_input: The input file could not be read")
        );
    }

    #[test]
    fn the_documented_get_asset_answer_is_a_ready_job_with_its_stream_url() {
        let answer = Mux.parse_poll(&fixture("get-asset-ready.json")).expect("answer");
        assert_eq!(
            (answer.status, answer.output_url.as_deref()),
            (JobStatus::Completed, Some(HLS))
        );
        assert_eq!(
            Mux.poll_request(ASSET).expect("request").path,
            ["video", "v1", "assets", ASSET]
        );
    }

    #[test]
    fn events_about_other_things_are_not_job_events_and_asset_events_are() {
        let reason = Mux
            .not_a_job_event(&fixture("webhook-upload-created.json"))
            .expect("not a job event");
        assert!(reason.contains("video.upload.created"), "{reason}");
        for name in [
            "webhook-asset-created.json",
            "webhook-asset-ready.json",
            "webhook-asset-errored.json",
        ] {
            assert_eq!(Mux.not_a_job_event(&fixture(name)), None, "{name}");
        }
        assert_eq!(
            Mux.not_a_job_event(b"{not json"),
            None,
            "bad JSON is refused by parse_webhook, with a reason"
        );
        assert!(Mux.parse_webhook(b"{not json").is_err());
    }

    #[test]
    fn polling_authenticates_with_http_basic() {
        assert_eq!(Mux.authorization("id:secret"), "Basic aWQ6c2VjcmV0");
    }

    fn ready_asset(playback_id: &str, created_at: serde_json::Value) -> Vec<u8> {
        serde_json::json!({"type": "video.asset.ready", "id": "evt-1", "created_at": created_at,
            "data": {"id": "asset-1", "status": "ready", "duration": 12.5,
                "playback_ids": [{"id": playback_id, "policy": "public"}]}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn only_a_well_formed_public_playback_id_becomes_the_stream_url() {
        let ready = Mux
            .parse_webhook(&ready_asset("abc123", serde_json::json!(1_778_673_605)))
            .expect("ready");
        assert_eq!(ready.output_url.as_deref(), Some("https://stream.mux.com/abc123.m3u8"));
        assert!(ready
            .result
            .as_deref()
            .is_some_and(|r| r.contains("\"asset_id\":\"asset-1\"")));
        let odd = Mux
            .parse_webhook(&ready_asset("abc/../x", serde_json::json!(1)))
            .expect("still an event");
        assert_eq!(odd.output_url, None);
    }

    #[test]
    fn an_asset_s_time_may_be_unix_seconds_as_a_number_or_a_string_or_rfc_3339() {
        let at = OffsetDateTime::from_unix_timestamp(1_778_673_605).expect("in range");
        for created_at in [
            serde_json::json!(1_778_673_605),
            serde_json::json!("1778673605"),
            serde_json::json!("2026-05-13T12:00:05Z"),
        ] {
            let event = Mux
                .parse_webhook(&ready_asset("abc", created_at.clone()))
                .expect("event");
            assert_eq!(event.provider_time, Some(at), "{created_at}");
        }
        let unreadable = Mux
            .parse_webhook(&ready_asset("abc", serde_json::json!("soon")))
            .expect("event");
        assert_eq!(unreadable.provider_time, None, "an unreadable time is left out");
    }

    #[test]
    fn an_errored_asset_keeps_no_result_and_names_its_error() {
        let body = serde_json::json!({"type": "video.asset.errored", "id": "evt-2",
            "data": {"id": "asset-1", "status": "errored", "duration": 1.0,
                "errors": {"type": "invalid_input", "messages": ["unsupported codec"]}}});
        let event = Mux.parse_webhook(body.to_string().as_bytes()).expect("event");
        assert_eq!(event.error.as_deref(), Some("invalid_input: unsupported codec"));
        assert_eq!(event.result, None);
    }

    #[test]
    fn mux_is_polled_at_its_public_api_fifty_assets_a_run_at_most() {
        let defaults = Mux.api_defaults();
        assert_eq!(defaults.base_url, Some("https://api.mux.com"));
        assert_eq!(defaults.max_polls_per_run, Some(50));
    }
}
