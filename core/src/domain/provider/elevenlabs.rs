//! ElevenLabs' asynchronous speech to text (elevenlabs.io/docs, "Batch
//! speech to text with webhooks"): `POST /v1/speech-to-text` with
//! `webhook=true` returns at once, and the transcription is posted to the
//! workspace's webhook, signed (the `elevenlabs` scheme):
//! `{"type": "speech_to_text_transcription", "event_timestamp", "data":
//! {"request_id", "webhook_metadata", "transcription": {…}}}`. The same
//! webhook receives the Agents platform's events (`post_call_transcription`
//! and others), which are not jobs here.
//!
//! A job is known by the transcription's `transcription_id` where the
//! delivery carries one (the id `GET {base_url}/speech-to-text/transcripts/{id}`
//! takes), else by the `request_id` the submission returned. The transcript
//! answer is the transcription itself; its text stays in the archive and
//! the result says where. ElevenLabs' key goes in `xi-api-key`.

use serde_json::{Map, Value};

use super::generic::{err, id_string, unix_time};
use super::{bounded_result, ApiDefaults, ApiRequest, PayloadError, PollAnswer, ProviderProfile, WebhookPayload};
use crate::domain::job::JobStatus;

#[derive(Debug, Clone, Copy, Default)]
pub struct ElevenLabs;

const TRANSCRIPTION: &str = "speech_to_text_transcription";
/// A transcript with every word's timing runs to megabytes.
const MAX_ANSWER_BYTES: usize = 16 << 20;

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

/// A finished transcription: its ids and figures, never its text.
fn transcribed(transcription: &Map<String, Value>, request_id: Option<&Value>) -> PollAnswer {
    let mut fields = Map::new();
    for name in [
        "transcription_id",
        "language_code",
        "language_probability",
        "audio_duration_secs",
    ] {
        if let Some(value) = transcription.get(name) {
            fields.insert(name.into(), value.clone());
        }
    }
    if let Some(id) = request_id {
        fields.insert("request_id".into(), id.clone());
    }
    fields.insert("transcript_in".into(), Value::from("the archived delivery"));
    PollAnswer {
        result: bounded_result(fields),
        ..PollAnswer::bare_ended(JobStatus::Completed)
    }
}

impl ProviderProfile for ElevenLabs {
    fn name(&self) -> &'static str {
        "elevenlabs"
    }

    fn not_a_job_event(&self, body: &[u8]) -> Option<String> {
        let kind = serde_json::from_slice::<Value>(body)
            .ok()?
            .get("type")?
            .as_str()?
            .to_owned();
        (kind != TRANSCRIPTION).then(|| {
            format!(
                "an ElevenLabs {:?} event is not a transcription",
                kind.escape_debug().to_string()
            )
        })
    }

    fn parse_webhook(&self, body: &[u8]) -> Result<WebhookPayload, PayloadError> {
        let root = object(body, "body")?;
        if root.get("type").and_then(Value::as_str) != Some(TRANSCRIPTION) {
            return Err(err(format!("field \"type\" must be {TRANSCRIPTION}")));
        }
        let data = root
            .get("data")
            .and_then(Value::as_object)
            .ok_or_else(|| err("field \"data\" must be an object"))?;
        let transcription = data
            .get("transcription")
            .and_then(Value::as_object)
            .ok_or_else(|| err("field \"data.transcription\" must be an object"))?;
        let job_id = match id_string(
            transcription.get("transcription_id"),
            "data.transcription.transcription_id",
        )? {
            Some(id) => id,
            None => id_string(data.get("request_id"), "data.request_id")?
                .ok_or_else(|| err("field \"data.request_id\" is required"))?,
        };
        let answer = transcribed(transcription, data.get("request_id"));
        Ok(WebhookPayload {
            id: None,
            job_id,
            kind: TRANSCRIPTION.into(),
            status: answer.status,
            progress: None,
            output_url: None,
            error: None,
            result: answer.result,
            provider_time: unix_time(root.get("event_timestamp")),
            fetch: false,
        })
    }

    fn poll_request(&self, job_id: &str) -> Result<ApiRequest, PayloadError> {
        Ok(ApiRequest::path(&["speech-to-text", "transcripts", job_id]))
    }

    /// The transcript, once there is one (the API answers 404 before).
    fn parse_poll(&self, body: &[u8]) -> Result<PollAnswer, PayloadError> {
        let root = object(body, "answer")?;
        if !root.contains_key("text") && !root.contains_key("transcripts") {
            return Err(err("the answer is not a transcript (no \"text\")"));
        }
        Ok(transcribed(&root, None))
    }

    fn auth_header(&self) -> &'static str {
        "xi-api-key"
    }

    fn authorization(&self, token: &str) -> String {
        token.to_owned()
    }

    fn api_defaults(&self) -> ApiDefaults {
        ApiDefaults {
            base_url: Some("https://api.elevenlabs.io/v1"),
            max_polls_per_run: None,
            max_answer_bytes: MAX_ANSWER_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        crate::domain::provider::fixture("elevenlabs", name)
    }

    #[test]
    fn a_transcription_delivery_completes_its_job_and_the_agents_events_are_not_jobs() {
        let done = ElevenLabs
            .parse_webhook(&fixture("webhook-transcription.json"))
            .expect("transcription");
        assert_eq!(
            (done.job_id.as_str(), done.status),
            ("1234567890", JobStatus::Completed)
        );
        let result: Value = serde_json::from_str(done.result.as_deref().expect("result")).expect("JSON");
        assert_eq!(
            (result["language_code"].as_str(), result["request_id"].as_str()),
            (Some("en"), Some("1234567890"))
        );
        assert!(
            !done.result.expect("result").contains("Hello world"),
            "the text is not the result"
        );
        assert!(done.provider_time.is_some());
        assert_eq!(ElevenLabs.not_a_job_event(&fixture("webhook-transcription.json")), None);
        let call = ElevenLabs.not_a_job_event(&fixture("webhook-post-call-transcription.json"));
        assert!(call.is_some_and(|why| why.contains("post_call_transcription")));
        let with_id = br#"{"type":"speech_to_text_transcription","data":{"request_id":"r","transcription":{"transcription_id":"t-1","text":"x"}}}"#;
        assert_eq!(
            ElevenLabs.parse_webhook(with_id).expect("id").job_id,
            "t-1",
            "the id the API is asked by"
        );
    }

    #[test]
    fn a_transcript_answer_completes_the_job_at_the_transcripts_path_with_the_key_header() {
        let answer = ElevenLabs
            .parse_poll(&fixture("get-transcript.json"))
            .expect("transcript");
        assert_eq!(answer.status, JobStatus::Completed);
        assert!(answer.result.expect("result").contains("\"audio_duration_secs\":1.1"));
        assert!(ElevenLabs.parse_poll(br#"{"detail":"not found"}"#).is_err());
        assert_eq!(
            ElevenLabs.poll_request("t-1").expect("request").path,
            ["speech-to-text", "transcripts", "t-1"]
        );
        assert_eq!(
            (ElevenLabs.auth_header(), ElevenLabs.authorization("k")),
            ("xi-api-key", "k".to_owned())
        );
    }
}
