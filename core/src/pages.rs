//! The server-rendered pages of the verification flow: small, accessible,
//! readable on a phone, no external assets and no scripts. Their only style is
//! one inline `<style>` allowed by hash in a strict Content-Security-Policy.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::id::{Pid, SessionId};
use crate::wire::VerificationResult;

const STYLE: &str = "body{margin:0;font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f4f5f7;color:#1d2330}\
main{max-width:28rem;margin:3rem auto;padding:1.5rem 1.75rem;background:#fff;border-radius:12px;box-shadow:0 1px 4px rgba(0,0,0,.12)}\
h1{font-size:1.35rem;margin:0 0 .75rem}p{margin:.5rem 0}ol{padding-left:1.25rem}\
button{font:inherit;font-weight:600;width:100%;margin-top:1rem;padding:.8rem 1rem;border:0;border-radius:8px;background:#4752c4;color:#fff;cursor:pointer}\
button:focus-visible{outline:3px solid #1d2330;outline-offset:2px}\
.muted{color:#5b6270;font-size:.9rem}dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem 1rem}dt{font-weight:600}dd{margin:0;word-break:break-all}\
@media (prefers-color-scheme:dark){body{background:#15171c;color:#e8eaf0}main{background:#1f232b}.muted{color:#a3a9b6}button:focus-visible{outline-color:#e8eaf0}}";

/// A page to send: its status and HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// HTTP status.
    pub status: u16,
    /// The document.
    pub html: String,
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The pages' Content-Security-Policy: nothing but our inline style (by
/// hash); forms may post to us and be redirected to the providers' `origins`.
pub fn content_security_policy(origins: &[&str]) -> String {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    let mut form = String::from("'self'");
    for o in origins.iter().filter(|o| !o.is_empty()) {
        form.push(' ');
        form.push_str(o);
    }
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action {form}; frame-ancestors 'none'; base-uri 'none'"
    )
}

fn layout(status: u16, title: &str, body: &str) -> Page {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"referrer\" content=\"no-referrer\">\
<title>{t} · Dock verification</title><style>{STYLE}</style></head>\
<body><main>\n<h1>{t}</h1>\n{body}\n</main></body></html>\n",
        t = escape(title)
    );
    Page { status, html }
}

/// The page at `verifyUrl` for a pending session: who asks, what will be
/// linked, and a button that starts the flow (a form POST; works without JS).
pub fn verify_page(app_name: &str, pid: &Pid, sid: &SessionId, label: Option<&str>) -> Page {
    // The integrator's name for the user: someone sent another person's link
    // can tell before signing in.
    let label = label.map_or_else(String::new, |l| {
        format!(
            "<p>This verification is for <strong>{}</strong>. If that is not you, close this tab.</p>",
            escape(l)
        )
    });
    let body = format!(
        "<p><strong>{app}</strong> asks you to verify your accounts.</p>{label}\
<p>You will sign in to:</p><ol><li><strong>Discord</strong>, to share your Discord user ID;</li>\
<li><strong>Roblox</strong>, to share your Roblox user ID.</li></ol>\
<p class=\"muted\">{app} will receive both IDs and learn whether this Discord account was linked to another Roblox account before. Nothing else is shared.</p>\
<form method=\"post\" action=\"discord/start\"><input type=\"hidden\" name=\"pid\" value=\"{pid}\">\
<input type=\"hidden\" name=\"sid\" value=\"{sid}\"><button type=\"submit\">Continue with Discord</button></form>",
        app = escape(app_name),
        pid = escape(pid.as_str()),
        sid = escape(sid.as_str()),
    );
    layout(200, "Verify your accounts", &body)
}

/// A page that explains why the flow cannot go on.
pub fn message_page(status: u16, title: &str, message: &str) -> Page {
    layout(
        status,
        title,
        &format!(
            "<p>{}</p><p class=\"muted\">You can close this tab.</p>",
            escape(message)
        ),
    )
}

/// The success page after completion.
pub fn success_page(app_name: &str, result: &VerificationResult) -> Page {
    let body = format!(
        "<p>Your accounts are verified for <strong>{app}</strong>. You can close this tab.</p>\
<dl><dt>Discord</dt><dd>{d}</dd><dt>Roblox</dt><dd>{r}</dd></dl>",
        app = escape(app_name),
        d = escape(&result.discord_id),
        r = escape(&result.roblox_id),
    );
    layout(200, "Verification complete", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn verify_page_escapes_the_app_name_and_posts_to_start() {
        let p = verify_page(
            "<script>x</script>",
            &Pid::parse("pid-a").unwrap(),
            &SessionId::from_entropy([1; 16]),
            None,
        );
        assert!(!p.html.contains("<script>"));
        assert!(p.html.contains("&lt;script&gt;"));
        assert!(p.html.contains("action=\"discord/start\""));
        assert!(!p.html.contains("<script"), "no scripts at all");
        assert!(!p.html.contains("This verification is for"));
        // The integrator's label for the user, escaped.
        let p = verify_page(
            "App",
            &Pid::parse("pid-a").unwrap(),
            &SessionId::from_entropy([1; 16]),
            Some("<b>Ann</b> & co"),
        );
        assert!(
            p.html.contains(
                "This verification is for <strong>&lt;b&gt;Ann&lt;/b&gt; &amp; co</strong>"
            ),
            "{}",
            p.html
        );
    }

    #[test]
    fn csp_allows_exactly_our_style() {
        let csp = content_security_policy(&["https://discord.com", ""]);
        assert!(csp.starts_with("default-src 'none'; style-src 'sha256-"));
        assert!(
            csp.contains("form-action 'self' https://discord.com;"),
            "{csp}"
        );
        let hash =
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
        let page = message_page(404, "Not found", "x");
        let style = page
            .html
            .split("<style>")
            .nth(1)
            .unwrap()
            .split("</style>")
            .next()
            .unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style.as_bytes())),
            hash
        );
    }
}
