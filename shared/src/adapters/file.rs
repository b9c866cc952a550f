use std::path::PathBuf;

use async_trait::async_trait;

use crate::ports::{PortError, SourcesLoader};

/// Reads the sources document from a local file (local runs and tests).
#[derive(Debug, Clone)]
pub struct FileSources {
    path: PathBuf,
}

impl FileSources {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

#[async_trait]
impl SourcesLoader for FileSources {
    async fn load(&self) -> Result<String, PortError> {
        tokio::fs::read_to_string(&self.path)
            .await
            .map_err(|e| PortError::permanent("read sources file", format!("{}: {e}", self.path.display())))
    }

    fn location(&self) -> String {
        format!("file {}", self.path.display())
    }
}
