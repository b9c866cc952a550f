//! The provider's job API over HTTP(S), with one client per container.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{Client, StatusCode, Url};
use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

use crate::domain::provider;
use crate::domain::sources::SourceConfig;
use crate::ports::{JobPoller, PollError, PollOutcome};

/// The largest poll answer read; a job status is a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct HttpJobPoller {
    client: Client,
}

impl HttpJobPoller {
    /// `timeout` bounds each request, connection included.
    pub fn new(timeout: Duration) -> Self {
        let client = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("jobhook-reconciler/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the TLS backend initializes");
        Self { client }
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(value: Option<&HeaderValue>, now: OffsetDateTime) -> Option<Duration> {
    let text = value?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = OffsetDateTime::parse(text, &Rfc2822).ok()?;
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

fn classify(error: reqwest::Error) -> PollError {
    if error.is_timeout() {
        PollError::Timeout
    } else {
        // Without the URL: a base URL may carry credentials.
        PollError::Network(error.without_url().to_string())
    }
}

#[async_trait]
impl JobPoller for HttpJobPoller {
    async fn poll(&self, source: &SourceConfig, job_id: &str) -> Result<PollOutcome, PollError> {
        let api = source.api.as_ref().ok_or(PollError::NoApi)?;
        let profile = provider::profile(&source.provider)
            .ok_or_else(|| PollError::BadAnswer(format!("unknown provider profile {:?}", source.provider)))?;
        let mut url = Url::parse(&api.base_url).map_err(|e| PollError::Network(format!("api.base_url: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| PollError::Network("api.base_url cannot have a path".into()))?
            .pop_if_empty()
            .extend(profile.poll_path(job_id));
        let mut bearer = HeaderValue::from_str(&profile.authorization(api.token.expose()))
            .map_err(|_| PollError::Network("api.token is not a valid header value".into()))?;
        bearer.set_sensitive(true);

        let response = self
            .client
            .get(url)
            .header(AUTHORIZATION, bearer)
            .send()
            .await
            .map_err(classify)?;
        let status = response.status();
        match status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(PollOutcome::NotFound),
            StatusCode::TOO_MANY_REQUESTS => {
                return Ok(PollOutcome::RateLimited {
                    retry_after: retry_after(response.headers().get(RETRY_AFTER), OffsetDateTime::now_utc()),
                })
            }
            s if s.is_server_error() => return Err(PollError::Server(s.as_u16())),
            s => return Err(PollError::Unexpected(s.as_u16())),
        }
        if response
            .content_length()
            .is_some_and(|len| len as usize > MAX_ANSWER_BYTES)
        {
            return Err(PollError::BadAnswer("answer too large".into()));
        }
        let body = response.bytes().await.map_err(classify)?;
        if body.len() > MAX_ANSWER_BYTES {
            return Err(PollError::BadAnswer("answer too large".into()));
        }
        profile
            .parse_poll(&body)
            .map(PollOutcome::Found)
            .map_err(|e| PollError::BadAnswer(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = OffsetDateTime::from_unix_timestamp(784_111_777).expect("time"); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            retry_after(Some(&HeaderValue::from_static("120")), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after(Some(&HeaderValue::from_static("Sun, 06 Nov 1994 08:50:37 GMT")), now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(retry_after(Some(&HeaderValue::from_static("soon")), now), None);
        assert_eq!(retry_after(None, now), None);
    }
}
