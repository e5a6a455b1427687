//! Any bytes into the YAML resource stream parser `vansite apply -f` and `delete -f` use, and
//! the checks across objects after it. It must answer with resources or an error whose message
//! (file, document, line, field) can be written, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vansite::model::{parse_documents, SiteResources};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_documents(text, "fuzz.yaml") {
        Ok(parsed) => {
            if let Err(error) = SiteResources::new("fuzz", parsed.resources) {
                let _ = error.to_string();
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
