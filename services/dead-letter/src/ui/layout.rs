//! The page shell and the small pieces every page uses.

use super::Session;
use crate::entry::Status;
use maud::{DOCTYPE, Markup, html};

/// A whole page for a signed-in person: the header (navigation, who, sign out), a notice left
/// by their last action, then `body`.
pub fn page(title: &str, session: &Session, notice: Option<&str>, body: Markup) -> Markup {
    let role = if session.may_act() {
        "operator"
    } else {
        "viewer"
    };
    shell(
        title,
        html! {
            header.top {
                nav aria-label="Main" {
                    a.brand href="/ui" { "Ledgerline" }
                    a href="/ui" { "Review queue" }
                    a href="/ui/orders" { "Order timeline" }
                    @if let Some(url) = session.reconciler.report() {
                        a href=(url) { "Reconciliation report" }
                    }
                }
                div.who {
                    span { (session.caller.name) " · " (role) }
                    @if !session.caller.stores.is_empty() {
                        span.muted { " · stores: " (session.caller.stores.join(", ")) }
                    }
                    form.inline method="post" action="/ui/logout" {
                        (csrf(session))
                        button.link type="submit" { "Sign out" }
                    }
                }
            }
            main #main {
                @if let Some(n) = notice {
                    p.notice role="status" { (n) }
                }
                h1 { (title) }
                (body)
            }
        },
    )
}

/// A page with no session (sign-in, refusals).
pub fn bare(title: &str, body: Markup) -> Markup {
    shell(
        title,
        html! {
            main #main {
                h1 { (title) }
                (body)
            }
        },
    )
}

fn shell(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Ledgerline" }
                link rel="stylesheet" href="/ui/app.css";
                script src="/ui/app.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                (body)
            }
        }
    }
}

/// The sign-in form.
pub fn login(next: &str, error: Option<&str>) -> Markup {
    bare(
        "Sign in",
        html! {
            p { "Sign in with a token of this service (" code { "DEAD_LETTER_TOKENS" } ", or the one-time token it printed at start)." }
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            form.card method="post" action="/ui/login" {
                input type="hidden" name="next" value=(next);
                label for="token" { "Token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// A paragraph of explanation.
pub fn message(text: &str) -> Markup {
    html! { p { (text) } p { a href="/ui" { "Back to the review queue" } } }
}

/// The hidden CSRF field every form carries.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="_csrf" value=(session.csrf); }
}

/// A status as a badge.
pub fn status(s: Status) -> Markup {
    html! { span class={ "badge s-" (s.as_str()) } { (s.as_str()) } }
}

/// A count with thousands separated: `10,000`.
pub fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How long ago an RFC 3339 instant was, in a person's words (`3 min`, `2 h`, `4 d`).
pub fn age(t: &str) -> String {
    let Ok(then) = chrono::DateTime::parse_from_rfc3339(t) else {
        return String::new();
    };
    let secs = chrono::Utc::now()
        .signed_duration_since(then)
        .num_seconds()
        .max(0);
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3_600 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3_600),
        s => format!("{} d", s / 86_400),
    }
}

/// An instant as `2026-12-07 09:30:12 UTC`.
pub fn when(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_else(|_| t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_a_person_says_them() {
        let ago = |s: i64| {
            (chrono::Utc::now() - chrono::Duration::seconds(s))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        assert_eq!(age(&ago(5)), "5 s");
        assert_eq!(age(&ago(180)), "3 min");
        assert_eq!(age(&ago(7_200)), "2 h");
        assert_eq!(age(&ago(4 * 86_400)), "4 d");
        assert_eq!(age("not a time"), "");
        assert_eq!(when("2026-12-07T09:30:12.123Z"), "2026-12-07 09:30:12 UTC");
        assert_eq!(
            [0, 999, 1_000, 10_000, 1_234_567].map(count),
            ["0", "999", "1,000", "10,000", "1,234,567"]
        );
    }
}
