//! Go durations (`time.ParseDuration`), the format of `AccessGrant.spec.expirationWindow`:
//! a sequence of decimal numbers, each with an optional fraction and a unit
//! (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), such as `15m`, `1h30m`, `1.5h`, `300ms`.

use std::time::Duration;

/// Units longest first, so `ms` is not read as `m` followed by garbage.
const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a positive Go duration. Signs are refused: a window is never negative or zero.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Err("it is empty".into());
    }
    let mut rest = text;
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(format!("'{number}' is not a number"));
        }
        let (unit, scale) = UNITS
            .iter()
            .find(|(unit, _)| after.starts_with(unit))
            .ok_or_else(|| "a number without a unit (ns, us, ms, s, m, h)".to_string())?;
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole
                .parse()
                .map_err(|_| format!("'{whole}' is too large"))?
        };
        let mut part = whole.checked_mul(*scale).ok_or("it is too large")?;
        let mut divisor = 1u128;
        for digit in fraction.bytes().take(18) {
            divisor *= 10;
            part += u128::from(digit - b'0') * scale / divisor;
        }
        nanos = nanos.checked_add(part).ok_or("it is too large")?;
        rest = &after[unit.len()..];
    }
    if nanos == 0 {
        return Err("it must be longer than zero".into());
    }
    let nanos = u64::try_from(nanos).map_err(|_| "it is too large".to_string())?;
    Ok(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_examples_parse() {
        let cases = [
            ("15m", 900.0),
            ("1h30m", 5400.0),
            ("1.5h", 5400.0),
            ("90s", 90.0),
            ("300ms", 0.3),
            ("1s500ms", 1.5),
            ("2h45m0.5s", 9900.5),
            (".5s", 0.5),
            ("1µs", 0.000001),
            ("10ns", 0.00000001),
        ];
        for (text, seconds) in cases {
            let parsed = parse_go_duration(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(
                (parsed.as_secs_f64() - seconds).abs() < 1e-9,
                "{text}: {parsed:?}"
            );
        }
    }

    #[test]
    fn bad_durations_are_refused_with_the_reason() {
        for (text, reason) in [
            ("", "empty"),
            ("15", "without a unit"),
            ("15 m", "without a unit"),
            ("15x", "without a unit"),
            ("-1m", "not a number"),
            ("1..5s", "not a number"),
            ("0s", "longer than zero"),
            ("m", "not a number"),
            ("99999999999999999999h", "too large"),
        ] {
            let error = parse_go_duration(text).unwrap_err();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }
}
