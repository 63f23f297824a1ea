//! No policy file, however malformed, may panic the parser or make it loop.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = lvsnap::config::parse_str(text, std::path::Path::new("fuzz.toml"));
    }
});
