//! Keeping a job's output before the provider deletes it: the output is
//! streamed from its URL into the user's bucket, part by part, with its
//! SHA-256 computed on the way, so memory stays at about two parts whatever
//! the output's size.

use sha2::{Digest, Sha256};

use crate::ports::{ObjectUpload, PortError};

/// S3's smallest part but the last (5 MiB); larger parts mean fewer requests.
pub const DEFAULT_PART_BYTES: usize = 8 * 1024 * 1024;
const MIN_PART_BYTES: usize = 5 * 1024 * 1024;

pub use crate::domain::outputs::KeptOutput;

#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    /// The provider no longer has it (404, 410): too late, no retry helps.
    #[error("the output is gone at the provider (HTTP {0})")]
    Expired(u16),
    #[error("the output is larger than the {max} bytes allowed")]
    TooLarge { max: u64 },
    /// The provider's side failed (a 5xx, a reset, a timeout): may pass.
    #[error("fetching the output failed: {0}")]
    Source(String),
    /// An answer no retry changes (a 403, a 400).
    #[error("the provider refused the output (HTTP {0})")]
    Refused(u16),
    #[error(transparent)]
    Store(#[from] PortError),
}

impl KeepError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Source(_) => true,
            Self::Store(e) => e.is_retryable(),
            Self::Expired(_) | Self::TooLarge { .. } | Self::Refused(_) => false,
        }
    }
}

/// A fetch's failure without its URL: an output URL may be presigned, and
/// its signature is a credential until it expires, so it is never logged.
fn source_error(error: reqwest::Error) -> String {
    error.without_url().to_string()
}

/// Where and how an output is kept.
#[derive(Debug, Clone)]
pub struct Destination<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub max_bytes: u64,
    pub part_bytes: usize,
}

/// Streams `url` into `destination`. An upload that cannot finish (too
/// large, a failure half way) is aborted, so no parts are left behind.
pub async fn keep_output(
    http: &reqwest::Client,
    store: &dyn ObjectUpload,
    url: &str,
    destination: &Destination<'_>,
) -> Result<KeptOutput, KeepError> {
    let mut response = http
        .get(url)
        .send()
        .await
        .map_err(|e| KeepError::Source(source_error(e)))?;
    let status = response.status().as_u16();
    match status {
        200..=299 => {}
        404 | 410 => return Err(KeepError::Expired(status)),
        408 | 429 | 500..=599 => return Err(KeepError::Source(format!("HTTP {status}"))),
        _ => return Err(KeepError::Refused(status)),
    }
    if response.content_length().is_some_and(|len| len > destination.max_bytes) {
        return Err(KeepError::TooLarge {
            max: destination.max_bytes,
        });
    }
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let part_bytes = destination.part_bytes.max(MIN_PART_BYTES);
    let mut upload = Upload {
        store,
        destination,
        content_type: content_type.as_deref(),
        id: None,
        parts: Vec::new(),
    };
    let mut digest = Sha256::new();
    let mut buffer: Vec<u8> = Vec::with_capacity(part_bytes);
    let mut total: u64 = 0;
    let result: Result<(), KeepError> = async {
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => return Err(KeepError::Source(source_error(e))),
            };
            total += chunk.len() as u64;
            if total > destination.max_bytes {
                return Err(KeepError::TooLarge {
                    max: destination.max_bytes,
                });
            }
            digest.update(&chunk);
            buffer.extend_from_slice(&chunk);
            if buffer.len() >= part_bytes {
                let part = std::mem::replace(&mut buffer, Vec::with_capacity(part_bytes));
                upload.part(part).await?;
            }
        }
        upload.finish(buffer).await
    }
    .await;
    if let Err(error) = result {
        upload.abort().await;
        return Err(error);
    }
    Ok(KeptOutput {
        source_url: url.to_owned(),
        s3_uri: crate::domain::outputs::s3_uri(destination.bucket, destination.key),
        bytes: total,
        sha256: hex::encode(digest.finalize()),
        content_type,
    })
}

/// An upload under way: a single put until a second part is needed.
struct Upload<'a> {
    store: &'a dyn ObjectUpload,
    destination: &'a Destination<'a>,
    content_type: Option<&'a str>,
    id: Option<String>,
    parts: Vec<(i32, String)>,
}

impl Upload<'_> {
    async fn part(&mut self, bytes: Vec<u8>) -> Result<(), KeepError> {
        let (bucket, key) = (self.destination.bucket, self.destination.key);
        let id = match &self.id {
            Some(id) => id.clone(),
            None => {
                let id = self.store.start(bucket, key, self.content_type).await?;
                self.id = Some(id.clone());
                id
            }
        };
        let number = self.parts.len() as i32 + 1;
        let etag = self.store.part(bucket, key, &id, number, bytes).await?;
        self.parts.push((number, etag));
        Ok(())
    }

    async fn finish(&mut self, rest: Vec<u8>) -> Result<(), KeepError> {
        let (bucket, key) = (self.destination.bucket, self.destination.key);
        if self.id.is_none() {
            return Ok(self.store.put(bucket, key, self.content_type, rest).await?);
        }
        if !rest.is_empty() {
            self.part(rest).await?;
        }
        let id = self.id.clone().expect("started");
        Ok(self.store.complete(bucket, key, &id, &self.parts).await?)
    }

    async fn abort(&self) {
        if let Some(id) = &self.id {
            if let Err(error) = self
                .store
                .abort(self.destination.bucket, self.destination.key, id)
                .await
            {
                tracing::warn!(%error, key = self.destination.key, "an unfinished upload could not be aborted");
            }
        }
    }
}
