//! Outputs kept before the provider deletes them: where a source keeps its
//! jobs' outputs, what a kept output records, and the request that asks for
//! one to be kept. A leaf module: the job model, the sources document and the
//! notification all name these types.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The most one output may take unless a source says otherwise (5 GiB: S3's
/// largest single PUT, and larger than any generated video a job API returns).
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// A source's `keep_outputs`: copy each completed job's outputs into
/// `s3://{bucket}/{prefix}…` before the provider deletes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepOutputs {
    pub bucket: String,
    /// Ends in `/` or is empty; never starts with one.
    pub prefix: String,
    pub max_bytes: u64,
    /// How long the provider keeps an output after the job ends, when the
    /// source states it; else the profile's ([`crate::domain::provider::ProviderProfile::output_retention`]).
    pub retention: Option<Duration>,
}

/// An output, kept: where it came from, where it is, and what it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptOutput {
    pub source_url: String,
    pub s3_uri: String,
    pub bytes: u64,
    /// Hex SHA-256 of the bytes kept.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// What the notifier asks the keeper to do for one completed transition: the
/// message on the outputs queue. The keeper reads the job again before it
/// copies, so a request that was overtaken (a correction changed the output)
/// keeps nothing stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeepRequest {
    pub source: String,
    pub job_id: String,
    pub output_url: String,
    /// The transition that completed the job.
    pub transition: u64,
    /// When the job ended, as the provider said, else when jobhook applied
    /// it (RFC 3339): the provider's retention counts from there.
    pub completed_at: String,
}

/// The object key an output is kept under: `{prefix}{source}/{job_id}/{file}`,
/// where `file` is the URL's last path segment reduced to characters that need
/// no escaping anywhere (`output` when nothing is left). Job ids are the
/// provider's, so they are reduced the same way; the key never holds `..` as
/// a segment.
pub fn object_key(prefix: &str, source: &str, job_id: &str, output_url: &str) -> String {
    let file = url::Url::parse(output_url)
        .ok()
        .and_then(|u| u.path_segments().and_then(|mut s| s.next_back().map(str::to_owned)))
        .map(|segment| key_segment(&segment))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "output".to_owned());
    let job = Some(key_segment(job_id))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "job".to_owned());
    format!("{prefix}{source}/{job}/{file}")
}

fn key_segment(text: &str) -> String {
    let kept: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect();
    if kept.chars().all(|c| c == '.') {
        kept.replace('.', "_")
    } else {
        kept
    }
}

/// `s3://bucket/key`.
pub fn s3_uri(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_is_kept_under_its_source_job_and_file_name() {
        assert_eq!(
            object_key(
                "kept/",
                "replicate",
                "p1",
                "https://replicate.delivery/xez/out-0.png?sig=1"
            ),
            "kept/replicate/p1/out-0.png"
        );
        assert_eq!(
            object_key("", "acme", "j/../../etc", "https://cdn.example/a%20b/"),
            "acme/j_.._.._etc/output"
        );
        assert_eq!(
            object_key("p/", "acme", "..", "https://cdn.example/.."),
            "p/acme/__/output"
        );
        assert_eq!(object_key("p/", "acme", "", "not a url"), "p/acme/job/output");
        let long = "x".repeat(500);
        assert_eq!(
            object_key("p/", "a", &long, "https://h/f").len(),
            "p/a/".len() + 128 + "/f".len()
        );
    }

    #[test]
    fn a_keep_request_reads_back_as_written() {
        let request = KeepRequest {
            source: "acme".into(),
            job_id: "j1".into(),
            output_url: "https://cdn.example/j1.mp4".into(),
            transition: 3,
            completed_at: "2026-12-03T10:00:00.000Z".into(),
        };
        let text = serde_json::to_string(&request).expect("serializes");
        assert_eq!(serde_json::from_str::<KeepRequest>(&text).expect("parses"), request);
    }
}
