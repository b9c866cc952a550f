//! What a provider sent, kept: each delivery's raw bytes and each applied
//! poll answer, so a job's state can be re-derived after a profile is fixed,
//! long after the queue has forgotten the message.
//!
//! A record is stored compressed (DEFLATE over its JSON). One that compresses
//! to [`INLINE_MAX_BYTES`] or less rides inside the timeline entry the apply
//! writes anyway, where it fits the write unit already paid for; a larger one
//! goes into the batch's segment object, and the entry holds its place.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use base64::engine::general_purpose::STANDARD as BASE64;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};

pub use super::archive_ref::{ArchiveLocation, SegmentRef};
use super::envelope::Envelope;
use super::provider::PollAnswer;

/// A compressed record of at most this many bytes is kept in its timeline
/// entry. With ids of common length the entry then stays within one 1 KB
/// write unit, so keeping the record costs no more write capacity.
pub const INLINE_MAX_BYTES: usize = 512;

/// The most a decompressed record may take: a delivery is bounded by the
/// receiver's body limit, so anything larger is not a record.
const MAX_RECORD_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A webhook delivery, verified by the receiver.
    Delivery,
    /// An answer of the provider's job API that was applied (a reconciler
    /// poll). A thin delivery's fetched answer rides in its delivery's record.
    Poll,
}

/// One thing a provider sent, as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveRecord {
    pub kind: RecordKind,
    pub source: String,
    /// RFC 3339, when the receiver accepted it or the poll was answered.
    pub received_at: String,
    /// The signature scheme that verified a delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// How the delivery was verified; only verified deliveries are queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_at: Option<i64>,
    /// Lower-case names; never a header that carries a credential.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The raw bytes, exactly as received: in the JSON as text when they
    /// are UTF-8 (which compresses as text does), else as base64.
    #[serde(flatten, with = "body_field")]
    pub body: Vec<u8>,
    /// For a thin delivery, what the provider's API answered for it; for a
    /// poll, the answer itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<ArchivedAnswer>,
}

/// A poll answer as the profile understood it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedAnswer {
    pub status: super::job::JobStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

impl From<&PollAnswer> for ArchivedAnswer {
    fn from(answer: &PollAnswer) -> Self {
        Self {
            status: answer.status,
            progress: answer.progress,
            output_url: answer.output_url.clone(),
            error: answer.error.clone(),
            result: answer.result.clone(),
            updated_at: answer
                .updated_at
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
        }
    }
}

impl ArchivedAnswer {
    pub fn poll_answer(&self) -> PollAnswer {
        PollAnswer {
            status: self.status,
            progress: self.progress,
            output_url: self.output_url.clone(),
            error: self.error.clone(),
            result: self.result.clone(),
            updated_at: self
                .updated_at
                .as_deref()
                .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()),
        }
    }
}

mod body_field {
    use super::BASE64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Body {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body_base64: Option<String>,
    }

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Body {
                body: Some(text.to_owned()),
                body_base64: None,
            },
            Err(_) => Body {
                body: None,
                body_base64: Some(BASE64.encode(bytes)),
            },
        }
        .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        match Body::deserialize(deserializer)? {
            Body {
                body: Some(text),
                body_base64: None,
            } => Ok(text.into_bytes()),
            Body {
                body: None,
                body_base64: Some(b64),
            } => BASE64.decode(b64).map_err(serde::de::Error::custom),
            Body {
                body: None,
                body_base64: None,
            } => Ok(Vec::new()),
            Body { .. } => Err(serde::de::Error::custom("a record has one body, as text or as base64")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    #[error("archived record does not decompress: {0}")]
    Compression(String),
    #[error("archived record is larger than {MAX_RECORD_BYTES} bytes")]
    TooLarge,
    #[error("archived record is not a record: {0}")]
    Shape(String),
}

impl ArchiveRecord {
    /// The record of a verified delivery, from the envelope that carried it.
    pub fn of_delivery(envelope: &Envelope, body: Vec<u8>) -> Self {
        Self {
            kind: RecordKind::Delivery,
            source: envelope.source.clone(),
            received_at: envelope.received_at.clone(),
            scheme: Some(envelope.scheme.clone()),
            verification: Some("verified".into()),
            webhook_id: envelope.webhook_id.clone(),
            signed_at: envelope.signed_at,
            headers: envelope.headers.clone(),
            body,
            answer: None,
        }
    }

    /// The record of an applied poll answer.
    pub fn of_poll(source: &str, received_at: String, answer: &PollAnswer) -> Self {
        Self {
            kind: RecordKind::Poll,
            source: source.to_owned(),
            received_at,
            scheme: None,
            verification: None,
            webhook_id: None,
            signed_at: None,
            headers: BTreeMap::new(),
            body: Vec::new(),
            answer: Some(answer.into()),
        }
    }

    pub fn with_answer(mut self, answer: &PollAnswer) -> Self {
        self.answer = Some(answer.into());
        self
    }

    /// DEFLATE over the record's JSON.
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("a record serializes");
        let mut encoder = DeflateEncoder::new(Vec::with_capacity(json.len() / 2), Compression::best());
        encoder.write_all(&json).expect("writing to a Vec cannot fail");
        encoder.finish().expect("writing to a Vec cannot fail")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ArchiveError> {
        let mut json = Vec::new();
        let read = DeflateDecoder::new(bytes)
            .take(MAX_RECORD_BYTES + 1)
            .read_to_end(&mut json)
            .map_err(|e| ArchiveError::Compression(e.to_string()))?;
        if read as u64 > MAX_RECORD_BYTES {
            return Err(ArchiveError::TooLarge);
        }
        serde_json::from_slice(&json).map_err(|e| ArchiveError::Shape(e.to_string()))
    }
}

/// How a batch's records are kept: the small ones inline, the rest laid end
/// to end in one segment, each addressed by its byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivePlan {
    /// Per record, in order: inline bytes, or its range in the segment.
    pub placements: Vec<Placement>,
    /// The segment's bytes; empty when every record is inline.
    pub segment: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Inline(Vec<u8>),
    InSegment { offset: u64, len: u64 },
}

impl ArchivePlan {
    pub fn of(records: &[ArchiveRecord]) -> Self {
        Self::with_inline_max(records, INLINE_MAX_BYTES)
    }

    fn with_inline_max(records: &[ArchiveRecord], inline_max: usize) -> Self {
        let mut segment = Vec::new();
        let placements = records
            .iter()
            .map(|record| {
                let bytes = record.encode();
                if bytes.len() <= inline_max {
                    Placement::Inline(bytes)
                } else {
                    let offset = segment.len() as u64;
                    segment.extend_from_slice(&bytes);
                    Placement::InSegment {
                        offset,
                        len: bytes.len() as u64,
                    }
                }
            })
            .collect();
        Self { placements, segment }
    }

    /// The locations, once the segment is stored at `bucket`/`key`.
    pub fn locations(self, bucket: &str, key: &str) -> Vec<ArchiveLocation> {
        self.placements
            .into_iter()
            .map(|placement| match placement {
                Placement::Inline(bytes) => ArchiveLocation::Inline(bytes),
                Placement::InSegment { offset, len } => ArchiveLocation::Segment(SegmentRef {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    offset,
                    len,
                }),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::job::JobStatus;

    fn delivery(body: &[u8]) -> ArchiveRecord {
        ArchiveRecord {
            kind: RecordKind::Delivery,
            source: "acme".into(),
            received_at: "2026-05-13T12:00:05Z".into(),
            scheme: Some("standard-webhooks".into()),
            verification: Some("verified".into()),
            webhook_id: Some("msg_1".into()),
            signed_at: Some(1_778_673_605),
            headers: [("content-type".to_owned(), "application/json".to_owned())].into(),
            body: body.to_vec(),
            answer: None,
        }
    }

    /// Bytes that do not compress: a pseudo-random sequence.
    fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x9e37_79b9_u32;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect()
    }

    #[test]
    fn a_record_round_trips_byte_for_byte_whatever_its_body() {
        for body in [
            b"{\"id\":\"evt\"}".to_vec(),
            vec![0, 0xff, 0xfe, b'\n'],
            noise(5000),
            Vec::new(),
        ] {
            let record = delivery(&body).with_answer(&PollAnswer {
                updated_at: Some(time::macros::datetime!(2026-05-13 12:00:05 UTC)),
                ..PollAnswer::bare(JobStatus::Completed, Some(100))
            });
            let decoded = ArchiveRecord::decode(&record.encode()).expect("decodes");
            assert_eq!(decoded, record);
            assert_eq!(
                decoded.answer.expect("answer").poll_answer().updated_at,
                record.answer.unwrap().poll_answer().updated_at
            );
        }
    }

    fn inflated(bytes: &[u8]) -> String {
        let mut json = String::new();
        DeflateDecoder::new(bytes).read_to_string(&mut json).expect("inflates");
        json
    }

    #[test]
    fn a_text_body_is_kept_as_text_so_it_compresses_as_text() {
        let json = inflated(&delivery(b"{\"id\":\"evt\"}").encode());
        assert!(json.contains(r#""body":"{\"id\":\"evt\"}""#), "{json}");
        let json = inflated(&delivery(&[0xff, 0]).encode());
        assert!(json.contains(r#""body_base64":"/wA=""#), "{json}");
    }

    #[test]
    fn bytes_that_are_not_a_record_are_refused_not_panicked_on() {
        assert!(matches!(
            ArchiveRecord::decode(b"not deflate"),
            Err(ArchiveError::Compression(_))
        ));
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(b"{\"kind\":1}").unwrap();
        assert!(matches!(
            ArchiveRecord::decode(&encoder.finish().unwrap()),
            Err(ArchiveError::Shape(_))
        ));
        // A small bomb: 5 MiB of zeros compress to a few KB.
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&vec![b' '; 5 * 1024 * 1024]).unwrap();
        assert_eq!(
            ArchiveRecord::decode(&encoder.finish().unwrap()),
            Err(ArchiveError::TooLarge)
        );
    }

    #[test]
    fn small_records_stay_inline_and_large_ones_share_one_segment_by_range() {
        let small = delivery(br#"{"id":"evt_1","type":"job.completed","data":{"job_id":"j"}}"#);
        let large = delivery(&noise(3000));
        let larger = delivery(&noise(6000));
        let plan = ArchivePlan::of(&[large.clone(), small.clone(), larger.clone()]);
        let locations = plan.clone().locations("bucket", "archive/seg");
        let ArchiveLocation::Inline(inline) = &locations[1] else {
            panic!("small record inline: {locations:?}")
        };
        assert!(inline.len() <= INLINE_MAX_BYTES);
        assert_eq!(ArchiveRecord::decode(inline).unwrap(), small);
        for (i, expected) in [(0, &large), (2, &larger)] {
            let ArchiveLocation::Segment(at) = &locations[i] else {
                panic!("large record in the segment")
            };
            assert_eq!((at.bucket.as_str(), at.key.as_str()), ("bucket", "archive/seg"));
            let bytes = &plan.segment[at.offset as usize..(at.offset + at.len) as usize];
            assert_eq!(&ArchiveRecord::decode(bytes).unwrap(), expected);
        }
        assert!(
            ArchivePlan::of(&[small]).segment.is_empty(),
            "no segment when all is inline"
        );
    }

    #[test]
    fn the_inline_bound_is_inclusive() {
        let record = delivery(&noise(700));
        let len = record.encode().len();
        let at = |max| ArchivePlan::with_inline_max(std::slice::from_ref(&record), max).placements;
        assert!(matches!(at(len)[0], Placement::Inline(_)));
        assert!(matches!(at(len - 1)[0], Placement::InSegment { offset: 0, .. }));
    }
}
