//! Post text as HTML: everything escaped, web links made clickable, line
//! breaks kept. Nothing a guest types can become markup.

use std::fmt::Write;

/// Escapes the five HTML-significant characters.
pub fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("<br>"),
            _ => out.push(c),
        }
    }
}

/// Renders a post body: `http://` and `https://` links become anchors that
/// open in a new tab without a referrer; everything else is escaped text.
pub fn render(body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 16);
    let mut finder = linkify::LinkFinder::new();
    finder.kinds(&[linkify::LinkKind::Url]);
    for span in finder.spans(body) {
        let text = span.as_str();
        let is_web = matches!(span.kind(), Some(linkify::LinkKind::Url))
            && (text.starts_with("http://") || text.starts_with("https://"));
        if is_web {
            let mut href = String::new();
            escape(text, &mut href);
            let _ = write!(
                out,
                "<a href=\"{href}\" rel=\"noopener noreferrer nofollow\" target=\"_blank\">{href}</a>"
            );
        } else {
            escape(text, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn markup_is_escaped_and_links_are_clickable() {
        assert_eq!(
            render("<script>alert(1)</script> & \"q\""),
            "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(
            render("see https://example.org/a?b=1&c=2 now\nbye"),
            "see <a href=\"https://example.org/a?b=1&amp;c=2\" rel=\"noopener noreferrer nofollow\" target=\"_blank\">https://example.org/a?b=1&amp;c=2</a> now<br>bye"
        );
        // Only web links: no javascript: or data: anchors.
        assert_eq!(render("javascript:alert(1)"), "javascript:alert(1)");
        assert!(!render("x\" onmouseover=\"a https://e.org/\"><img").contains("<img"));
    }
}
