//! The provider's job API over HTTP(S), with one client per container.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::header::{HeaderValue, RETRY_AFTER};
use reqwest::{Client, StatusCode};

use crate::domain::provider::{self, ApiRequest, PayloadError, ProviderProfile};
use crate::domain::sources::{ApiConfig, SourceConfig};
use crate::ports::{JobPoller, PollError, PollOutcome};

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
            .user_agent(concat!("jobhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the TLS backend initializes");
        Self { client }
    }
}

/// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3).
fn retry_after(value: Option<&HeaderValue>, now: SystemTime) -> Option<Duration> {
    let text = value?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn classify(error: reqwest::Error) -> PollError {
    if error.is_timeout() {
        PollError::Timeout
    } else {
        // Without the URL: a base URL may carry credentials.
        PollError::Network(error.without_url().to_string())
    }
}

impl HttpJobPoller {
    /// One GET under the source's API, read up to `max_bytes`.
    async fn get(
        &self,
        api: &ApiConfig,
        profile: &dyn ProviderProfile,
        request: &ApiRequest,
        max_bytes: usize,
    ) -> Result<Answer, PollError> {
        let mut url = api.base_url.clone();
        url.path_segments_mut()
            .map_err(|()| PollError::BadAnswer("api.base_url cannot have a path".into()))?
            .pop_if_empty()
            .extend(&request.path);
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&request.query);
        }
        let mut credentials = HeaderValue::from_str(&profile.authorization(api.token.expose()))
            .map_err(|_| PollError::Network("api.token is not a valid header value".into()))?;
        credentials.set_sensitive(true);

        let response = self
            .client
            .get(url)
            .header(profile.auth_header(), credentials)
            .send()
            .await
            .map_err(classify)?;
        let status = response.status();
        match status {
            // fal answers a request still queued or running with 202 and its status.
            StatusCode::OK | StatusCode::ACCEPTED => {}
            StatusCode::NOT_FOUND => return Ok(Answer::NotFound),
            StatusCode::TOO_MANY_REQUESTS => {
                return Ok(Answer::RateLimited(retry_after(
                    response.headers().get(RETRY_AFTER),
                    SystemTime::now(),
                )))
            }
            s if s.is_server_error() => return Err(PollError::Server(s.as_u16())),
            s => return Err(PollError::Unexpected(s.as_u16())),
        }
        if response.content_length().is_some_and(|len| len as usize > max_bytes) {
            return Err(PollError::BadAnswer("answer too large".into()));
        }
        let body = response.bytes().await.map_err(classify)?;
        if body.len() > max_bytes {
            return Err(PollError::BadAnswer("answer too large".into()));
        }
        Ok(Answer::Body(body))
    }
}

enum Answer {
    Body(bytes::Bytes),
    NotFound,
    RateLimited(Option<Duration>),
}

#[async_trait]
impl JobPoller for HttpJobPoller {
    async fn poll(&self, source: &SourceConfig, job_id: &str) -> Result<PollOutcome, PollError> {
        let api = source.api.as_ref().ok_or(PollError::NoApi)?;
        let profile = provider::profile(&source.provider)
            .ok_or_else(|| PollError::BadAnswer(format!("unknown provider profile {:?}", source.provider)))?;
        let max_bytes = profile.api_defaults().max_answer_bytes;
        let bad = |e: PayloadError| PollError::BadAnswer(e.to_string());
        let request = profile.poll_request(job_id).map_err(bad)?;
        let answer = match self.get(api, profile, &request, max_bytes).await? {
            Answer::Body(body) => profile.parse_poll(&body).map_err(bad)?,
            Answer::NotFound => return Ok(PollOutcome::NotFound),
            Answer::RateLimited(retry_after) => return Ok(PollOutcome::RateLimited { retry_after }),
        };
        let Some(follow_up) = profile.follow_up(job_id, &answer) else {
            return Ok(PollOutcome::Found(answer));
        };
        // The job is found; a follow-up that is refused makes the whole poll
        // fail (retried later) rather than apply a result without its parts.
        match self.get(api, profile, &follow_up, max_bytes).await? {
            Answer::Body(body) => profile
                .parse_follow_up(job_id, answer, &body)
                .map(PollOutcome::Found)
                .map_err(bad),
            Answer::NotFound => Err(PollError::BadAnswer("the follow-up request was answered 404".into())),
            Answer::RateLimited(retry_after) => Ok(PollOutcome::RateLimited { retry_after }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        // Sun, 06 Nov 1994 08:49:37 GMT, the date RFC 9110's examples use.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            retry_after(Some(&HeaderValue::from_static("120")), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after(Some(&HeaderValue::from_static("Sun, 06 Nov 1994 08:50:37 GMT")), now),
            Some(Duration::from_secs(60))
        );
        // The obsolete forms a recipient must still accept.
        for obsolete in ["Sunday, 06-Nov-94 08:50:37 GMT", "Sun Nov  6 08:50:37 1994"] {
            assert_eq!(
                retry_after(Some(&HeaderValue::from_static(obsolete)), now),
                Some(Duration::from_secs(60)),
                "{obsolete}"
            );
        }
        assert_eq!(
            retry_after(Some(&HeaderValue::from_static("Sun, 06 Nov 1994 08:48:37 GMT")), now),
            Some(Duration::ZERO),
            "a date already past means now"
        );
        assert_eq!(retry_after(Some(&HeaderValue::from_static("soon")), now), None);
        assert_eq!(retry_after(None, now), None);
    }
}
