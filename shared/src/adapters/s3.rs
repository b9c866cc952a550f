//! Archive segments in an S3 bucket.

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use super::sdk_port_error;
use crate::domain::archive::SegmentRef;
use crate::ports::{ArchiveSegments, ObjectUpload, PortError};

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

/// Kept outputs in the user's bucket.
#[derive(Debug, Clone)]
pub struct S3Upload {
    client: Client,
}

impl S3Upload {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl ObjectUpload for S3Upload {
    async fn put(&self, bucket: &str, key: &str, content_type: Option<&str>, bytes: Vec<u8>) -> Result<(), PortError> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .set_content_type(content_type.map(str::to_owned))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| sdk_port_error("s3:PutObject", e))?;
        Ok(())
    }

    async fn start(&self, bucket: &str, key: &str, content_type: Option<&str>) -> Result<String, PortError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .set_content_type(content_type.map(str::to_owned))
            .send()
            .await
            .map_err(|e| sdk_port_error("s3:CreateMultipartUpload", e))?;
        out.upload_id
            .ok_or_else(|| PortError::transient("s3:CreateMultipartUpload", "no upload id in the answer"))
    }

    async fn part(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
        number: i32,
        bytes: Vec<u8>,
    ) -> Result<String, PortError> {
        let out = self
            .client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload)
            .part_number(number)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| sdk_port_error("s3:UploadPart", e))?;
        out.e_tag
            .ok_or_else(|| PortError::transient("s3:UploadPart", "no ETag in the answer"))
    }

    async fn complete(&self, bucket: &str, key: &str, upload: &str, parts: &[(i32, String)]) -> Result<(), PortError> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let parts = parts
            .iter()
            .map(|(number, etag)| CompletedPart::builder().part_number(*number).e_tag(etag).build())
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| sdk_port_error("s3:CompleteMultipartUpload", e))?;
        Ok(())
    }

    async fn abort(&self, bucket: &str, key: &str, upload: &str) -> Result<(), PortError> {
        self.client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload)
            .send()
            .await
            .map_err(|e| sdk_port_error("s3:AbortMultipartUpload", e))?;
        Ok(())
    }
}
