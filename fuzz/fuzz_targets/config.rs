//! Arbitrary UTF-8 as `triggerfish.toml`: parsed and validated (plugins,
//! channels, email, host limits, the inline insights workspace with its
//! sources, unification, segment and measure filters). It may fail; it must
//! not panic. The file is named `/fuzz/triggerfish.toml`, so a relative
//! `[insights] file` resolves under `/fuzz`, which does not exist.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use triggerfish::config_file::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::parse(Path::new("/fuzz/triggerfish.toml"), text) {
        let _ = config.page_limits();
        let _ = config.store_path();
    }
});
