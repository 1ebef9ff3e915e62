//! The logging bridge: the plugin's `tracing` events go to the host's log
//! callback and to the trace log file, each with its own level filter.
//!
//! Each plugin instance owns one [`Dispatch`]; exports and background tasks
//! run under it. No global subscriber is installed, so the plugin never
//! interferes with a host (or a second plugin instance) that uses `tracing`.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Receives formatted log records for the host.
pub trait LogSink: Send + Sync {
    fn log(&self, level: Level, target: &str, message: &str);
}

/// Where the plugin's log records go.
pub struct LogConfig {
    pub host: Option<(Arc<dyn LogSink>, LevelFilter)>,
    pub trace_file: Option<(File, LevelFilter)>,
}

/// Opens (appending, creating folders as needed) the trace log file.
pub fn open_trace_log(path: &Path) -> io::Result<File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// Builds the dispatcher of one plugin instance.
pub fn dispatch(config: LogConfig) -> Dispatch {
    let host_layer = config
        .host
        .map(|(sink, level)| HostLayer { sink }.with_filter(level));
    let file_layer = config.trace_file.map(|(file, level)| {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_thread_names(true)
            .with_writer(Mutex::new(file))
            .with_filter(level)
    });
    Dispatch::new(
        tracing_subscriber::registry()
            .with(host_layer)
            .with(file_layer),
    )
}

/// Converts an ABI level number (`OD_LOG_LEVEL_*`) to a filter.
pub fn level_filter(level: u32) -> Option<LevelFilter> {
    Some(match level {
        0 => LevelFilter::OFF,
        1 => LevelFilter::ERROR,
        2 => LevelFilter::WARN,
        3 => LevelFilter::INFO,
        4 => LevelFilter::DEBUG,
        5 => LevelFilter::TRACE,
        _ => return None,
    })
}

/// Converts a record's level to the ABI number (`OD_LOG_LEVEL_*`).
pub fn level_number(level: Level) -> u32 {
    match level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

struct HostLayer {
    sink: Arc<dyn LogSink>,
}

impl<S: Subscriber> Layer<S> for HostLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut text = MessageText::default();
        event.record(&mut text);
        self.sink.log(
            *event.metadata().level(),
            event.metadata().target(),
            &text.0,
        );
    }
}

/// Formats an event as "message key=value ...".
#[derive(Default)]
struct MessageText(String);

impl Visit for MessageText {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}");
            if !rest.is_empty() {
                self.0.push(' ');
                self.0.push_str(&rest);
            }
        } else {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            let _ = write!(self.0, "{}={value}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex as PlMutex;

    #[derive(Default)]
    struct Collect(PlMutex<Vec<(Level, String, String)>>);

    impl LogSink for Collect {
        fn log(&self, level: Level, target: &str, message: &str) {
            self.0
                .lock()
                .push((level, target.to_owned(), message.to_owned()));
        }
    }

    #[test]
    fn host_sink_gets_records_at_its_level_and_above() {
        let sink = Arc::new(Collect::default());
        let dispatch = dispatch(LogConfig {
            host: Some((sink.clone(), LevelFilter::INFO)),
            trace_file: None,
        });
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::debug!("hidden");
            tracing::info!(records = 3, "sent batch");
            tracing::error!("broken");
        });
        let got = sink.0.lock().clone();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].0, Level::INFO);
        assert_eq!(got[0].2, "sent batch records=3");
        assert!(got[0].1.starts_with("online_desktop"));
        assert_eq!(got[1].2, "broken");
    }

    #[test]
    fn trace_file_has_its_own_level() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs").join("trace.log");
        let file = open_trace_log(&path).unwrap();
        let sink = Arc::new(Collect::default());
        let dispatch = dispatch(LogConfig {
            host: Some((sink.clone(), LevelFilter::ERROR)),
            trace_file: Some((file, LevelFilter::DEBUG)),
        });
        tracing::dispatcher::with_default(&dispatch, || tracing::debug!("detail for support"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("detail for support"), "{text}");
        assert!(sink.0.lock().is_empty());
    }

    #[test]
    fn level_numbers_round_trip() {
        for level in [
            Level::ERROR,
            Level::WARN,
            Level::INFO,
            Level::DEBUG,
            Level::TRACE,
        ] {
            assert_eq!(
                level_filter(level_number(level)),
                Some(LevelFilter::from_level(level))
            );
        }
        assert_eq!(level_filter(6), None);
    }
}
