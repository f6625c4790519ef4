//! Numbers, times and names as people read them, and as URLs and headers
//! need them.

use std::time::Duration;

pub(crate) fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    match (days, hours) {
        (0, 0) => format!("{mins} min"),
        (0, h) => format!("{h} h {mins} min"),
        (d, h) => format!("{d} d {h} h"),
    }
}

pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A Unix time as an HTTP date, e.g. "Sat, 21 Nov 2026 19:43:26 GMT".
pub(crate) fn when(secs: i64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64))
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for
/// query strings and `filename*=` in Content-Disposition (RFC 5987).
pub(crate) fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A Content-Disposition value that downloads as `name` in every browser:
/// an ASCII fallback, then the exact UTF-8 name.
pub(crate) fn attachment(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{}",
        percent(name)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn downloads_keep_their_names() {
        assert_eq!(
            super::attachment("ré sumé\".pdf"),
            "attachment; filename=\"r_ sum__.pdf\"; filename*=UTF-8''r%C3%A9%20sum%C3%A9%22.pdf"
        );
        assert_eq!(super::percent("a/b c"), "a%2Fb%20c");
    }
}
