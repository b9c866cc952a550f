//! A request to track a job, as an application in any language sends it to
//! the tracking queue at submission: `{"source": "…", "job_id": "…"}`.
//! Tracked, a job is polled even if no webhook for it ever arrives.

use serde_json::Value;

use super::provider::generic::id_string;

/// One job to track: the source that will report it, and the provider's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackRequest {
    pub source: String,
    pub job_id: String,
}

/// Why a message is not a track request. Never quotes the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a track request ({{\"source\": …, \"job_id\": …}}): {0}")]
pub struct TrackRequestError(String);

impl TrackRequest {
    pub fn parse(body: &str) -> Result<Self, TrackRequestError> {
        let bad = |why: &str| TrackRequestError(why.to_owned());
        let doc: Value = serde_json::from_str(body).map_err(|_| bad("the body is not JSON"))?;
        let Value::Object(fields) = doc else {
            return Err(bad("the body is not a JSON object"));
        };
        if let Some(unknown) = fields.keys().find(|k| !matches!(k.as_str(), "source" | "job_id")) {
            return Err(TrackRequestError(format!(
                "unknown field {:?}",
                unknown.escape_debug().to_string()
            )));
        }
        let field = |name: &str| {
            id_string(fields.get(name), name)
                .map_err(|e| TrackRequestError(e.0))?
                .ok_or_else(|| TrackRequestError(format!("field {name:?} is required")))
        };
        Ok(Self {
            source: field("source")?,
            job_id: field("job_id")?,
        })
    }

    /// Whether `body` is shaped as a track request at all (an object naming
    /// `job_id`, with no envelope version): what tells it from an envelope.
    pub fn looks_like(body: &str) -> bool {
        // An envelope as the receiver writes it starts with its version:
        // the hot path needs no extra parse to tell.
        if body.starts_with("{\"v\":") {
            return false;
        }
        serde_json::from_str::<Value>(body)
            .ok()
            .is_some_and(|doc| doc.get("job_id").is_some() && doc.get("v").is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_track_request_names_a_source_and_a_job_and_nothing_else() {
        let request = TrackRequest::parse(r#"{"source": "runpod", "job_id": "e4616554-e1"}"#).expect("request");
        assert_eq!(
            (request.source.as_str(), request.job_id.as_str()),
            ("runpod", "e4616554-e1")
        );
        assert!(TrackRequest::looks_like(r#"{"source": "runpod", "job_id": "j"}"#));
        assert!(!TrackRequest::looks_like(r#"{"v": 1, "job_id": "j"}"#), "an envelope");
        assert!(!TrackRequest::looks_like(
            r#"{"v":1,"source":"s","body":"{\"job_id\":\"j\"}"}"#
        ));
        for (body, why) in [
            ("nope", "not JSON"),
            ("[]", "not a JSON object"),
            (r#"{"source": "s"}"#, "\"job_id\" is required"),
            (r#"{"job_id": "j"}"#, "\"source\" is required"),
            (r#"{"source": "s", "job_id": ""}"#, "\"job_id\" must be"),
            (r#"{"source": "s", "job_id": "a\u0007"}"#, "\"job_id\" must be"),
            (r#"{"source": "s", "job_id": 7}"#, "\"job_id\" must be"),
            (
                r#"{"source": "s", "job_id": "j", "status": "completed"}"#,
                "unknown field \"status\"",
            ),
        ] {
            let error = TrackRequest::parse(body).expect_err(body).to_string();
            assert!(error.contains(why), "{body}: {error}");
        }
    }
}
