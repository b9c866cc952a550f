//! Keeping what providers sent: the processor and the reconciler hand each
//! record here before the apply that references it, and `jobhook events`
//! and `jobhook replay` read records back.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::domain::archive::{ArchiveError, ArchiveLocation, ArchivePlan, ArchiveRecord, Placement};
use crate::domain::digest::sha256_hex;
use crate::ports::{ArchiveSegments, PortError};

/// Without a bucket (a deployment that predates it, a test) a record is kept
/// inline up to this size, then not at all: an item stays far below
/// DynamoDB's 400 KB.
const INLINE_ONLY_MAX_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Archiver {
    segments: Option<Arc<dyn ArchiveSegments>>,
    /// Key prefix of the segments, such as `archive/`.
    prefix: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Store(#[from] PortError),
    #[error(transparent)]
    Record(#[from] ArchiveError),
    #[error("the record is kept in a segment, and no bucket is configured to read it from")]
    NoBucket,
}

impl Archiver {
    pub fn new(segments: Option<Arc<dyn ArchiveSegments>>, prefix: impl Into<String>) -> Self {
        Self {
            segments,
            prefix: prefix.into(),
        }
    }

    /// An archiver that keeps records inline only.
    pub fn inline_only() -> Self {
        Self::new(None, "")
    }

    /// Keeps `records`, one location each (None: too large to keep without a
    /// bucket). The large ones go into one segment, stored before this
    /// returns; its key is its content's digest, so a retried batch rewrites
    /// the same object.
    pub async fn keep(
        &self,
        records: &[ArchiveRecord],
        now: OffsetDateTime,
    ) -> Result<Vec<Option<ArchiveLocation>>, PortError> {
        let mut plan = ArchivePlan::of(records);
        if plan.segment.is_empty() {
            return Ok(plan.locations("", "").into_iter().map(Some).collect());
        }
        let Some(segments) = &self.segments else {
            return Ok(records
                .iter()
                .zip(plan.placements)
                .map(|(record, placement)| match placement {
                    Placement::Inline(bytes) => Some(ArchiveLocation::Inline(bytes)),
                    Placement::InSegment { len, .. } if len as usize <= INLINE_ONLY_MAX_BYTES => {
                        Some(ArchiveLocation::Inline(record.encode()))
                    }
                    Placement::InSegment { len, .. } => {
                        tracing::warn!(
                            source = record.source,
                            bytes = len,
                            "record too large to archive without a bucket (set JOBHOOK_ARCHIVE_BUCKET)"
                        );
                        None
                    }
                })
                .collect());
        };
        let key = format!(
            "{}{:04}/{:02}/{:02}/{:02}/{}.seg",
            self.prefix,
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            &sha256_hex(&plan.segment)[..32]
        );
        let segment = std::mem::take(&mut plan.segment);
        segments.put(&key, segment).await?;
        Ok(plan.locations(segments.bucket(), &key).into_iter().map(Some).collect())
    }

    /// The record kept at `location`.
    pub async fn read(&self, location: &ArchiveLocation) -> Result<ArchiveRecord, ReadError> {
        match location {
            ArchiveLocation::Inline(bytes) => Ok(ArchiveRecord::decode(bytes)?),
            ArchiveLocation::Segment(at) => {
                let segments = self.segments.as_ref().ok_or(ReadError::NoBucket)?;
                Ok(ArchiveRecord::decode(&segments.read(at).await?)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::InMemorySegments;
    use crate::domain::archive::RecordKind;

    fn record(body: Vec<u8>) -> ArchiveRecord {
        ArchiveRecord {
            kind: RecordKind::Delivery,
            source: "acme".into(),
            received_at: "2026-05-13T12:00:05Z".into(),
            scheme: Some("github".into()),
            verification: Some("verified".into()),
            webhook_id: None,
            signed_at: None,
            headers: Default::default(),
            body,
            answer: None,
        }
    }

    fn incompressible(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    const NOW: OffsetDateTime = time::macros::datetime!(2026-05-13 12:00:05 UTC);

    #[tokio::test]
    async fn a_batch_s_large_records_share_one_object_and_each_reads_back() {
        let segments = Arc::new(InMemorySegments::default());
        let archiver = Archiver::new(Some(segments.clone()), "archive/");
        let records = [
            record(incompressible(2000, 1)),
            record(b"{}".to_vec()),
            record(incompressible(9000, 2)),
        ];
        let locations = archiver.keep(&records, NOW).await.expect("kept");
        let objects = segments.objects();
        assert_eq!(objects.len(), 1, "one object per batch");
        let key = objects.keys().next().unwrap();
        assert!(
            key.starts_with("archive/2026/05/13/12/") && key.ends_with(".seg"),
            "{key}"
        );
        assert!(matches!(locations[1], Some(ArchiveLocation::Inline(_))));
        for (location, expected) in locations.iter().zip(&records) {
            assert_eq!(
                &archiver.read(location.as_ref().unwrap()).await.expect("reads"),
                expected
            );
        }
        // The same batch again (a redelivery) writes the same object.
        archiver.keep(&records, NOW).await.expect("kept again");
        assert_eq!(segments.objects().len(), 1);
    }

    #[tokio::test]
    async fn a_bucket_that_fails_fails_the_keep_so_nothing_is_applied_unarchived() {
        let segments = Arc::new(InMemorySegments::default());
        segments.fail_puts(true);
        let archiver = Archiver::new(Some(segments), "archive/");
        let error = archiver
            .keep(&[record(incompressible(2000, 3))], NOW)
            .await
            .expect_err("fails");
        assert!(error.is_retryable());
        // All-inline batches never touch the bucket.
        assert!(archiver.keep(&[record(b"{}".to_vec())], NOW).await.is_ok());
    }

    #[tokio::test]
    async fn without_a_bucket_records_stay_inline_up_to_a_bound_and_larger_ones_are_not_kept() {
        let archiver = Archiver::inline_only();
        let locations = archiver
            .keep(
                &[record(incompressible(2000, 4)), record(incompressible(70_000, 5))],
                NOW,
            )
            .await
            .expect("kept");
        assert!(matches!(locations[0], Some(ArchiveLocation::Inline(_))));
        assert_eq!(locations[1], None);
        let segment = ArchiveLocation::Segment(crate::domain::archive::SegmentRef {
            bucket: "b".into(),
            key: "k".into(),
            offset: 0,
            len: 1,
        });
        assert!(matches!(archiver.read(&segment).await, Err(ReadError::NoBucket)));
    }
}
