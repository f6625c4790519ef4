//! Turning transport failures and S3 error bodies into sentences.
//!
//! S3 answers an error with `<Error><Code>…</Code><Message>…</Message>`.
//! Only the code and message are read (by plain search: they are two
//! leaf elements, and anything that lacks them is "not S3" anyway).

use std::error::Error as _;

/// One failure, worded for the admin page and the CLI.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The settings themselves are malformed (no network was used).
    #[error("{0}")]
    Settings(String),
    #[error("the name {0} does not resolve: check the endpoint's host name")]
    Resolve(String),
    #[error("{0} refused the connection: is the S3 service running on that port?")]
    Refused(String),
    #[error("{0} did not answer in time")]
    Timeout(String),
    #[error("the access key ID or secret key is wrong ({0})")]
    BadKey(String),
    #[error("there is no bucket \"{0}\" on the service")]
    NoSuchBucket(String),
    #[error(
        "the key may not do this in bucket \"{0}\" (AccessDenied): give it read and write permission"
    )]
    Denied(String),
    #[error("this device's clock and the service's differ too much ({0}): set the time on both")]
    ClockSkew(String),
    #[error("{0} is not there")]
    NoSuchKey(String),
    #[error("{0} is not an S3 service: {1}")]
    NotS3Endpoint(String, String),
    #[error("{0}")]
    NotS3(String),
    /// The service is there but cannot serve now (for Garage: too few
    /// nodes are up for a quorum). Worth retrying later.
    #[error("the S3 service cannot store or serve now: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Other(String),
}

impl S3Error {
    /// Whether waiting and trying again may help (the service or the
    /// network), as opposed to settings someone must change.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            S3Error::Resolve(_)
                | S3Error::Refused(_)
                | S3Error::Timeout(_)
                | S3Error::Unavailable(_)
        )
    }
}

pub(crate) fn from_transport(e: &reqwest::Error, host: &str) -> S3Error {
    let mut chain = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        chain.push_str(&s.to_string().to_lowercase());
        chain.push(' ');
        source = s.source();
    }
    if e.is_timeout() || chain.contains("timed out") {
        S3Error::Timeout(host.to_string())
    } else if chain.contains("dns error")
        || chain.contains("failed to lookup")
        || chain.contains("name or service not known")
    {
        S3Error::Resolve(host.split(':').next().unwrap_or(host).to_string())
    } else if chain.contains("connection refused") {
        S3Error::Refused(host.to_string())
    } else if chain.contains("certificate") || chain.contains("tls") {
        S3Error::Other(format!(
            "{host} offered a certificate this device does not trust: {}",
            e.source().map(|s| s.to_string()).unwrap_or_default()
        ))
    } else if e.is_connect() {
        S3Error::Unavailable(format!("cannot connect to {host}"))
    } else {
        S3Error::Unavailable(format!("the connection to {host} broke off"))
    }
}

pub(crate) fn from_response(
    status: u16,
    is_xml: bool,
    body: &str,
    what: &str,
    host: &str,
    bucket: &str,
) -> S3Error {
    let code = element(body, "Code");
    let message = element(body, "Message").unwrap_or_default();
    let Some(code) = code.filter(|_| is_xml && body.contains("<Error")) else {
        // HEAD has no body: its status is all there is.
        if body.is_empty() {
            return match status {
                403 => S3Error::BadKey(format!("{host} answered 403 Forbidden")),
                404 => S3Error::NoSuchKey(what.to_string()),
                500..=599 => S3Error::Unavailable(format!("{host} answered {status}")),
                _ => S3Error::NotS3Endpoint(
                    host.to_string(),
                    format!("it answered {status} without an S3 error"),
                ),
            };
        }
        let looks = if body.trim_start().starts_with('<') && body.to_lowercase().contains("<html") {
            "it answered with a web page"
        } else {
            "its answer is not an S3 error"
        };
        return S3Error::NotS3Endpoint(host.to_string(), format!("{looks} (status {status})"));
    };
    match code.as_str() {
        "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidSignature" => {
            S3Error::BadKey(code)
        }
        // Garage answers an unknown key ("No such key") and a wrong secret
        // ("Invalid signature") with AccessDenied.
        "AccessDenied" | "Forbidden"
            if ["no such key", "signature"]
                .iter()
                .any(|m| message.to_lowercase().contains(m)) =>
        {
            S3Error::BadKey(message)
        }
        "AccessDenied" | "Forbidden" => S3Error::Denied(bucket.to_string()),
        "NoSuchBucket" => S3Error::NoSuchBucket(bucket.to_string()),
        "NoSuchKey" => S3Error::NoSuchKey(what.to_string()),
        "RequestTimeTooSkewed" => S3Error::ClockSkew(message),
        _ if status >= 500 => S3Error::Unavailable(if message.is_empty() { code } else { message }),
        _ => S3Error::Other(format!(
            "{host} refused the request for {what}: {code}{}",
            if message.is_empty() {
                String::new()
            } else {
                format!(" ({message})")
            }
        )),
    }
}

/// The text of the first `<name>…</name>` in `body`, unescaped enough for
/// a message.
fn element(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{name}>"))? + start;
    let text = body[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    Some(text.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> S3Error {
        from_response(status, true, body, "packs/ab/x", "h:3900", "hearth")
    }

    #[test]
    fn error_codes_become_sentences() {
        let e = |code: &str, msg: &str| {
            resp(
                403,
                &format!(
                    "<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>{msg}</Message></Error>"
                ),
            )
        };
        assert!(matches!(e("InvalidAccessKeyId", ""), S3Error::BadKey(_)));
        assert!(matches!(
            e("AccessDenied", "Forbidden: No such key: GK1"),
            S3Error::BadKey(_)
        ));
        assert!(matches!(
            e("AccessDenied", "Forbidden: Invalid signature"),
            S3Error::BadKey(_)
        ));
        assert!(matches!(
            e("AccessDenied", "Operation is not allowed"),
            S3Error::Denied(_)
        ));
        assert!(
            matches!(e("NoSuchBucket", "Bucket not found"), S3Error::NoSuchBucket(b) if b == "hearth")
        );
        assert!(
            matches!(e("RequestTimeTooSkewed", "skew 20m"), S3Error::ClockSkew(m) if m == "skew 20m")
        );
        let quorum = resp(
            500,
            "<Error><Code>InternalError</Code><Message>Could not reach quorum of 2</Message></Error>",
        );
        assert!(quorum.is_transient(), "{quorum}");
        assert!(quorum.to_string().contains("quorum"), "{quorum}");
    }

    #[test]
    fn a_web_page_is_not_s3() {
        let e = from_response(
            200,
            false,
            "<!doctype html><html>hi</html>",
            "x",
            "h:80",
            "b",
        );
        assert_eq!(
            e.to_string(),
            "h:80 is not an S3 service: it answered with a web page (status 200)"
        );
        let e = from_response(404, false, "", "x", "h:80", "b");
        assert!(matches!(e, S3Error::NoSuchKey(_)));
    }
}
