//! Archive segments in an S3 bucket.

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use super::sdk_port_error;
use crate::domain::archive::SegmentRef;
use crate::ports::{ArchiveSegments, PortError};

#[derive(Debug, Clone)]
pub struct S3Segments {
    client: Client,
    bucket: String,
}

impl S3Segments {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }
}

#[async_trait]
impl ArchiveSegments for S3Segments {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), PortError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/octet-stream")
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| sdk_port_error("s3:PutObject", e))?;
        Ok(())
    }

    /// A ranged GET of the record's bytes: a segment is never read whole.
    async fn read(&self, at: &SegmentRef) -> Result<Vec<u8>, PortError> {
        if at.len == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .get_object()
            .bucket(&at.bucket)
            .key(&at.key)
            .range(format!("bytes={}-{}", at.offset, at.offset + at.len - 1))
            .send()
            .await
            .map_err(|e| sdk_port_error("s3:GetObject", e))?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| PortError::transient("s3:GetObject", e.to_string()))?
            .into_bytes();
        if bytes.len() as u64 != at.len {
            return Err(PortError::permanent(
                "s3:GetObject",
                format!(
                    "{} holds {} bytes where {} were recorded",
                    at.to_uri(),
                    bytes.len(),
                    at.len
                ),
            ));
        }
        Ok(bytes.to_vec())
    }
}
