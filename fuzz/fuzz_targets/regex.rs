//! Fuzzes a user-regex format (the nginx example of `regex_format.rs`) with any line.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static NGINX: OnceLock<parsers::Format> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let format = NGINX.get_or_init(|| {
        parsers::Format::regex(
            r#"^(?P<client_ip>\S+) - (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<destination>\S+) (?P<protocol>[^"]*)" (?P<code>\d{3}) (?P<bytes>\d+|-) "(?P<referer>[^"]*)" "(?P<user_agent>[^"]*)""#,
        )
        .expect("valid regex")
    });
    if let Ok(entry) = format.parse(data) {
        serde_json::to_string(&entry).expect("an entry always serializes");
    }
});
