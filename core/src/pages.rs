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
a.return{display:block;text-align:center;font-weight:600;margin-top:1rem;padding:.8rem 1rem;border-radius:8px;background:#4752c4;color:#fff;text-decoration:none}\
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

/// Why the verification flow stops on a page instead of going on. Each
/// reason's HTTP status, title and text are decided here and nowhere else:
/// the component only names the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt<'a> {
    /// The store is unavailable: 503.
    Unavailable,
    /// An unexpected failure: 500.
    Internal,
    /// The client address used up its requests per minute: 429.
    TooManyFromNetwork,
    /// The session's flow was started too many times: 429.
    TooManyStarts,
    /// An unknown, malformed or foreign link or `state`: 404.
    InvalidLink,
    /// No Discord or Roblox sign-in configured: 503.
    NotConfigured,
    /// The start form was not posted from the verify page (CSRF): 403.
    NotFromVerifyPage,
    /// The callback's `state` or browser binding was refused: 400.
    SignInNotAccepted(&'a str),
    /// The user declined a provider's consent screen: 403.
    ProviderDeclined(&'a str),
    /// A provider answered the callback with an error: 502.
    ProviderRefused(&'a str),
    /// A provider's token or user answer was not as expected: 502.
    ProviderFailed(&'a str),
    /// The Discord account is not the one the session is bound to: 403.
    WrongDiscordAccount,
    /// The session is already completed (200), expired or cancelled (410),
    /// or pending with a flow in progress (409).
    NotPending(crate::wire::Status),
    /// The session expired while the user was signing in: 410.
    ExpiredBeforeFinish,
    /// The session completed with other accounts meanwhile: 409.
    CompletedWithOthers,
}

impl Halt<'_> {
    /// The HTTP status of its page.
    pub fn status(&self) -> u16 {
        use crate::wire::Status;
        match self {
            Halt::Unavailable | Halt::NotConfigured => 503,
            Halt::Internal => 500,
            Halt::TooManyFromNetwork | Halt::TooManyStarts => 429,
            Halt::InvalidLink => 404,
            Halt::NotFromVerifyPage | Halt::ProviderDeclined(_) | Halt::WrongDiscordAccount => 403,
            Halt::SignInNotAccepted(_) => 400,
            Halt::ProviderRefused(_) | Halt::ProviderFailed(_) => 502,
            Halt::NotPending(Status::Completed) => 200,
            Halt::NotPending(Status::Expired | Status::Cancelled) | Halt::ExpiredBeforeFinish => {
                410
            }
            Halt::NotPending(Status::Pending) | Halt::CompletedWithOthers => 409,
        }
    }

    /// The page: [`message_page`] with this reason's status, title and text.
    pub fn page(&self) -> Page {
        use crate::wire::Status;
        let (title, text): (&str, String) = match self {
            Halt::Unavailable => (
                "Temporarily unavailable",
                "The service cannot verify accounts right now. Please try again in a minute.".into(),
            ),
            Halt::Internal => (
                "Something went wrong",
                "The verification could not continue. Please start again from your app.".into(),
            ),
            Halt::TooManyFromNetwork => (
                "Too many attempts",
                "Too many verification attempts came from your network. Please wait a minute and try again.".into(),
            ),
            Halt::TooManyStarts => (
                "Too many attempts",
                "This verification was started too many times. Please start again from your app.".into(),
            ),
            Halt::InvalidLink => (
                "Link not valid",
                "This verification link is not valid. Please start again from your app.".into(),
            ),
            Halt::NotConfigured => (
                "Verification is not set up",
                "This service has no Discord or Roblox sign-in configured yet. Please tell the app that sent you here.".into(),
            ),
            Halt::NotFromVerifyPage => (
                "Start from the verification page",
                "This verification can only be started from its own page. Please open the link your app gave you.".into(),
            ),
            Halt::SignInNotAccepted(why) => ("Sign-in not accepted", (*why).to_owned()),
            Halt::ProviderDeclined(provider) => (
                "Verification cancelled",
                format!(
                    "You declined the {provider} sign-in, so nothing was shared. You can start again from your app."
                ),
            ),
            Halt::ProviderRefused(provider) => (
                "Sign-in failed",
                format!("{provider} could not sign you in. Please start again from your app."),
            ),
            Halt::ProviderFailed(provider) => (
                "Sign-in failed",
                format!("{provider} did not answer as expected. Please try again."),
            ),
            Halt::WrongDiscordAccount => (
                "Wrong Discord account",
                "This verification is for a different Discord account. Sign in to Discord with the account your app asked you to verify, then open the link from your app again.".into(),
            ),
            Halt::NotPending(Status::Completed) => (
                "Already verified",
                "This verification is already complete.".into(),
            ),
            Halt::NotPending(Status::Expired) => (
                "Link expired",
                "This verification link has expired. Please start again from your app.".into(),
            ),
            Halt::NotPending(Status::Cancelled) => (
                "Verification cancelled",
                "This verification was cancelled by the app that started it.".into(),
            ),
            Halt::NotPending(Status::Pending) => (
                "Verification in progress",
                "Please finish the verification you started.".into(),
            ),
            Halt::ExpiredBeforeFinish => (
                "Link expired",
                "This verification expired before you finished. Please start again from your app.".into(),
            ),
            Halt::CompletedWithOthers => (
                "Already verified",
                "This verification was already completed with other accounts.".into(),
            ),
        };
        message_page(self.status(), title, &text)
    }
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

/// `url` with `sid` and `status` added to its query (before any fragment):
/// where a page's "Return to …" link goes.
pub fn return_url(url: &str, sid: &SessionId, status: crate::wire::Status) -> String {
    let (head, fragment) = match url.split_once('#') {
        Some((h, f)) => (h, Some(f)),
        None => (url, None),
    };
    let sep = if !head.contains('?') {
        "?"
    } else if head.ends_with('?') || head.ends_with('&') {
        ""
    } else {
        "&"
    };
    let params = form_urlencoded::Serializer::new(String::new())
        .append_pair("sid", sid.as_str())
        .append_pair("status", status.as_str())
        .finish();
    let mut out = format!("{head}{sep}{params}");
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

impl Page {
    /// The page with a "Return to <app>" link to `url` (the integrator's
    /// `returnUrl`, with `sid` and `status` added by [`return_url`]) in
    /// place of "You can close this tab".
    pub fn with_return_link(mut self, app_name: &str, url: &str) -> Page {
        let link = format!(
            "<p><a class=\"return\" href=\"{}\">Return to {}</a></p>",
            escape(url),
            escape(app_name)
        );
        let closing = " You can close this tab.";
        let muted = "<p class=\"muted\">You can close this tab.</p>";
        if self.html.contains(muted) {
            self.html = self.html.replacen(muted, &link, 1);
        } else {
            self.html = self.html.replacen(closing, "", 1);
            self.html = self
                .html
                .replacen("\n</main>", &format!("\n{link}\n</main>"), 1);
        }
        self
    }
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
    fn return_links_carry_the_session_and_are_escaped() {
        let sid = SessionId::from_entropy([1; 16]);
        let st = crate::wire::Status::Completed;
        assert_eq!(
            return_url("https://app.example/done", &sid, st),
            format!("https://app.example/done?sid={sid}&status=completed")
        );
        assert_eq!(
            return_url("https://app.example/done?x=1#top", &sid, st),
            format!("https://app.example/done?x=1&sid={sid}&status=completed#top")
        );
        let page = success_page(
            "<App>",
            &VerificationResult {
                discord_id: "1".into(),
                roblox_id: "2".into(),
                link_changed: false,
                previous_roblox_id: None,
            },
        )
        .with_return_link("<App>", "https://app.example/?a=1&b=\"2\"");
        assert!(page.html.contains(
            "<a class=\"return\" href=\"https://app.example/?a=1&amp;b=&quot;2&quot;\">Return to &lt;App&gt;</a>"
        ), "{}", page.html);
        assert!(!page.html.contains("You can close this tab"));
        let page = Halt::NotPending(crate::wire::Status::Expired)
            .page()
            .with_return_link("App", "https://app.example/");
        assert!(page.html.contains("Return to App</a>"));
        assert!(!page.html.contains("You can close this tab"));
    }

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

    #[test]
    fn every_halt_has_its_status_and_an_escaped_page() {
        use crate::wire::Status;
        let table: &[(Halt<'_>, u16, &str)] = &[
            (Halt::Unavailable, 503, "Temporarily unavailable"),
            (Halt::Internal, 500, "Something went wrong"),
            (Halt::TooManyFromNetwork, 429, "your network"),
            (Halt::TooManyStarts, 429, "started too many times"),
            (Halt::InvalidLink, 404, "Link not valid"),
            (Halt::NotConfigured, 503, "not set up"),
            (
                Halt::NotFromVerifyPage,
                403,
                "Start from the verification page",
            ),
            (
                Halt::SignInNotAccepted("<b>x</b>"),
                400,
                "&lt;b&gt;x&lt;/b&gt;",
            ),
            (
                Halt::ProviderDeclined("Discord"),
                403,
                "You declined the Discord sign-in",
            ),
            (
                Halt::ProviderRefused("Roblox"),
                502,
                "Roblox could not sign you in",
            ),
            (
                Halt::ProviderFailed("Roblox"),
                502,
                "Roblox did not answer as expected",
            ),
            (Halt::WrongDiscordAccount, 403, "Wrong Discord account"),
            (Halt::NotPending(Status::Completed), 200, "already complete"),
            (Halt::NotPending(Status::Expired), 410, "has expired"),
            (Halt::NotPending(Status::Cancelled), 410, "was cancelled"),
            (Halt::NotPending(Status::Pending), 409, "in progress"),
            (Halt::ExpiredBeforeFinish, 410, "before you finished"),
            (Halt::CompletedWithOthers, 409, "with other accounts"),
        ];
        for (halt, status, text) in table {
            let page = halt.page();
            assert_eq!((halt.status(), page.status), (*status, *status), "{halt:?}");
            assert!(page.html.contains(text), "{halt:?}: {}", page.html);
        }
    }
}
