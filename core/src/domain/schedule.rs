//! When an open job is next due for a poll.

use std::time::Duration;

/// How long after its last applied event (or its tracking) an open job is
/// first due for a poll, unless set otherwise (`JOBHOOK_STALE_AFTER_SECS`).
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(600);
