//! Arbitrary bytes as the file of a `ndjson` data source: refreshed into the
//! entity store, read back, and imported again with every type given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triggerfish_data::store::ImportFormat;

fuzz_target!(|data: &[u8]| {
    triggerfish_fuzz::run_source(ImportFormat::Ndjson, data);
});
