//! Diagnostics through `tracing`, printed as single lines on stderr when MAPAGENT_LOG is set.
//! Events are only emitted from the constructor and the writer thread, never from a hook.

use tracing::field::{Field, Visit};
use tracing::{span, Event, Level, Metadata, Subscriber};

struct Stderr {
    level: Level,
}

struct Msg<'a>(&'a mut String);

impl Visit for Msg<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn core::fmt::Debug) {
        use core::fmt::Write;
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    // Written out so that tracing's default (formatting through Debug) does not link float
    // formatting: its panic locations and vtables are relocated data, private dirty pages in
    // every process (see `mapagent dirty` on libmapagent.so). The agent logs no floats.
    fn record_f64(&mut self, field: &Field, _value: f64) {
        self.record_str(field, "(float)");
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push(' ');
            self.0.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }
}

impl Subscriber for Stderr {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        *m.level() <= self.level
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, e: &Event<'_>) {
        let mut line = format!(
            "mapagent[{}] {}:",
            crate::sys::getpid(),
            e.metadata().level()
        );
        e.record(&mut Msg(&mut line));
        line.push('\n');
        let _ = crate::sys::write_all(2, line.as_bytes());
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

pub fn init(level: Option<Level>) {
    if let Some(level) = level {
        let _ = tracing::subscriber::set_global_default(Stderr { level });
    }
}
