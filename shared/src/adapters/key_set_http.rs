//! A published key set (a JWKS) read over HTTPS, with one client per container.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::Client;

use crate::domain::signature::jwks::MAX_KEY_SET_BYTES;
use crate::ports::{KeySetFetcher, PortError};

const OPERATION: &str = "jwks:GET";

#[derive(Debug, Clone)]
pub struct HttpKeySets {
    client: Client,
}

impl HttpKeySets {
    /// `timeout` bounds each fetch, connection included: a delivery waits on it.
    pub fn new(timeout: Duration) -> Self {
        let client = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("jobhook/", env!("CARGO_PKG_VERSION")))
            // Keys come from the URL the source names, never one a redirect
            // names instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the TLS backend initializes");
        Self { client }
    }
}

#[async_trait]
impl KeySetFetcher for HttpKeySets {
    async fn fetch(&self, url: &url::Url) -> Result<Vec<u8>, PortError> {
        // Every failure is worth another try later: the publisher is down,
        // slow or mid-deployment, and the source's keys are only there.
        let failed = |why: String| PortError::transient(OPERATION, why);
        let response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| failed(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("answered {}", response.status().as_u16())));
        }
        let mut body = Vec::new();
        let mut response = response;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| failed(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_KEY_SET_BYTES {
                return Err(failed("the key set is larger than 64 KiB".into()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}
