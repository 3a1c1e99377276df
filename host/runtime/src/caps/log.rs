//! `log`: structured log lines tagged with plugin name and event id.

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::triggerfish::plugin::log::{self as wit, Level as WitLevel};
use crate::context::{CallContext, Level, LogSource};

/// Per-instance state of the `log` capability.
pub struct LogInstance {
    cx: CallContext,
}

impl LogInstance {
    /// State for one delivery.
    pub fn new(cx: CallContext) -> Self {
        Self { cx }
    }
}

impl wit::Host for LogInstance {
    async fn log(&mut self, level: WitLevel, message: String) {
        let level = match level {
            WitLevel::Trace => Level::Trace,
            WitLevel::Debug => Level::Debug,
            WitLevel::Info => Level::Info,
            WitLevel::Warn => Level::Warn,
            WitLevel::Error => Level::Error,
        };
        self.cx.log(level, LogSource::Log, &message);
    }
}

/// Add `log` to the linker; `get` finds this capability's state in
/// the store data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut LogInstance,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<LogInstance>>(linker, get)
}
