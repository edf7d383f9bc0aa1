//! Captures every tracing event of the test process into a buffer, for the tests that search the
//! logs for secrets (`auth_logging`, `ws_logging`). A leaf module: it names nothing of its includer.
#![allow(dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex};

/// A `MakeWriter` appending to a shared buffer.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Installs a global TRACE-level subscriber (no ANSI colours) writing into a new capture.
    /// Once per test binary: a second call panics.
    pub fn install_global() -> Capture {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(capture.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("first global subscriber");
        capture
    }

    /// Everything logged so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("capture lock").clone()).expect("UTF-8 logs")
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}
