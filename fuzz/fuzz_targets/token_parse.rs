//! Any bytes into the token and link parsers: a file handed to `vansite link create` and a
//! grant server's answer. They must answer with a value or an error, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(vansite::tokens::Token::V1Connection(token)) = vansite::tokens::parse(text, "fuzz") {
            let _ = token.to_link_bundle();
        }
    }
    let _ = vansite::tokens::redeem::parse_grant_answer(data);
    let _ = vansite::tokens::redeem::access_token_answer(200, data);
    let _ = vansite::tokens::redeem::v1_claim_answer(200, data);
});
