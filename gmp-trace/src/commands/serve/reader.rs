//! The reader thread of `gmp-trace serve`: a pass over the watched processes every interval
//! (`watch.rs`), each turned into a page of metrics (`metrics.rs`) that `http.rs` hands out.
//!
//! The reads run on their own thread, never on the async runtime: a read of a big process takes
//! milliseconds of system calls, and the runtime main.rs builds is single-threaded, so a scrape
//! must never wait behind one. The thread publishes a finished page; a scrape copies it.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::metrics;
use super::watch::{Selection, Watcher};

/// What the reader thread publishes for the endpoint.
#[derive(Default)]
pub struct Published {
    /// The last page of metrics, as OpenMetrics (empty before the first pass)...
    pub openmetrics: String,
    /// ...and in Prometheus's text format 0.0.4.
    pub text: String,
    /// When the last pass ended.
    pub at: Option<Instant>,
}

pub type Shared = Arc<Mutex<Published>>;

/// Starts the reader thread: a pass every `interval` until `stop` is set.
pub fn start_reader(
    selection: Selection,
    interval: Duration,
    grace: Duration,
    with_sched: bool,
    shared: Shared,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("gmp-trace-serve-reader".into())
        .spawn(move || {
            let mut w = Watcher::new(selection, grace, with_sched);
            let mut exporter = metrics::Exporter::default();
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                w.pass();
                let openmetrics = exporter.render(&w);
                let text = metrics::prometheus_text(&openmetrics);
                // A poisoned lock means a scrape panicked while copying: the data is a String
                // and still whole.
                let mut p = shared.lock().unwrap_or_else(|e| e.into_inner());
                p.openmetrics = openmetrics;
                p.text = text;
                p.at = Some(Instant::now());
                drop(p);
                // Sleep in small steps so a stop is seen quickly.
                while t0.elapsed() < interval && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(
                        (interval - t0.elapsed().min(interval)).min(Duration::from_millis(100)),
                    );
                }
            }
        })
}
