//! Captures the JSON log lines the code under test writes, so tests can
//! assert on the structured fields operators will query.
//!
//! One global subscriber routes each line to the capture buffer of the
//! thread that wrote it. Scoped (per-thread default) subscribers are not
//! used: tests run in parallel, and tracing caches a call site's interest
//! across threads, so a scoped subscriber can miss lines.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once};

use serde_json::Value;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Debug, Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Every captured line, parsed; the event's fields are under `fields`.
    pub fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().expect("log buffer").clone();
        String::from_utf8(bytes)
            .expect("utf-8 logs")
            .lines()
            .map(|line| serde_json::from_str(line).expect("each log line is one JSON document"))
            .collect()
    }

    /// The fields of every line whose message is `message`.
    pub fn with_message(&self, message: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .map(|line| line["fields"].clone())
            .filter(|fields| fields["message"] == message)
            .collect()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

/// Writes to the current thread's capture, or nowhere.
#[derive(Debug, Clone, Copy)]
struct ThreadRouter;

#[derive(Debug)]
struct Line(Option<Captured>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(captured) = &self.0 {
            captured.0.lock().expect("log buffer").extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for ThreadRouter {
    type Writer = Line;

    fn make_writer(&'a self) -> Self::Writer {
        Line(CURRENT.with(|c| c.borrow().clone()))
    }
}

/// Stops capturing for this thread when dropped.
#[derive(Debug)]
pub struct CaptureGuard(());

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.borrow_mut().take());
    }
}

/// JSON logs written by this thread until the guard drops. Use it from a
/// current-thread runtime (the `#[tokio::test]` default), so every task the
/// test spawns runs, and logs, on this thread.
pub fn capture() -> (Captured, CaptureGuard) {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(ThreadRouter)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
    });
    let captured = Captured::default();
    CURRENT.with(|c| *c.borrow_mut() = Some(captured.clone()));
    (captured, CaptureGuard(()))
}
