//! An order's timeline: its webhooks, canonical events, Xero writes and dead letters, in order.

use super::layout::{self, when};
use super::{Session, UiState, page_response};
use crate::timeline::{StepKind, Timeline, of_order};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct Search {
    store: Option<String>,
    order: Option<String>,
}

/// `GET /ui/orders`: the search form; with an order, its timeline.
pub(super) async fn search(session: Session, Query(s): Query<Search>) -> Response {
    let store = s.store.as_deref().map(str::trim).unwrap_or("");
    let order = s.order.as_deref().map(str::trim).unwrap_or("");
    if !store.is_empty() && !order.is_empty() {
        let to = format!(
            "/ui/orders/{}/{}",
            super::urlencode(store),
            super::urlencode(order)
        );
        return Redirect::to(&to).into_response();
    }
    let store = if store.is_empty() {
        session.caller.stores.first().map_or("main", String::as_str)
    } else {
        store
    };
    page_response(
        StatusCode::OK,
        layout::page(
            "Order timeline",
            &session,
            None,
            html! {
                p { "What happened to an order, stage by stage: the webhooks the store sent, the events they became, what was written to Xero, and anything that went to review." }
                (form(store, order))
            },
        ),
    )
}

fn form(store: &str, order: &str) -> Markup {
    html! {
        form.filters method="get" action="/ui/orders" role="search" aria-label="Find an order" {
            div.field {
                label for="store" { "Store" }
                input #store type="text" name="store" value=(store) required;
            }
            div.field.grow {
                label for="order" { "Order number or id" }
                input #order type="search" name="order" value=(order) placeholder="SO-001042 or 1042" required autofocus;
            }
            div.field.buttons { button type="submit" { "Show timeline" } }
        }
    }
}

/// `GET /ui/orders/{store}/{key}`: the timeline.
pub(super) async fn page(
    State(state): State<UiState>,
    session: Session,
    Path((store, key)): Path<(String, String)>,
) -> Response {
    let t = match of_order(
        &state.app.js,
        state.app.actions.store(),
        &session.caller,
        &store,
        &key,
    )
    .await
    {
        Ok(t) => t,
        Err(e) => {
            return page_response(
                StatusCode::SERVICE_UNAVAILABLE,
                layout::page(
                    "Order timeline",
                    &session,
                    None,
                    layout::message(&format!("The streams could not be read just now: {e}")),
                ),
            );
        }
    };
    let title = if t.order_number.is_empty() {
        format!("Order {key}")
    } else {
        format!("Order {}", t.order_number)
    };
    let status = if t.steps.is_empty() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    page_response(
        status,
        layout::page(
            &title,
            &session,
            None,
            html! { (form(&store, &key)) (reconciler_link(&session, &t)) (steps(&t)) },
        ),
    )
}

/// The reconciler's view of the order: what it found, and both sides side by side.
fn reconciler_link(session: &Session, t: &Timeline) -> Markup {
    match session.reconciler.order(&t.store, &t.order_id) {
        Some(url) if !t.order_id.is_empty() => html! {
            p.links {
                a href=(url) { "The reconciler's view of this order" }
                " (its findings, and the store's and Xero's figures side by side)"
            }
        },
        _ => html! {},
    }
}

fn steps(t: &Timeline) -> Markup {
    html! {
        @if t.steps.is_empty() {
            p.muted { "Nothing is stored for this order in store " code { (t.store) } " (or your token does not cover that store)." }
        } @else {
            p.summary {
                "Store " code { (t.store) } ", order id " code { (t.order_id) }
                @if !t.order_number.is_empty() { ", number " code { (t.order_number) } }
                ": " (t.steps.len()) " steps."
                @if t.truncated { " " strong { "More is stored than is shown (over 500 messages in a stream)." } }
            }
            ol.timeline {
                @for s in &t.steps {
                    li class={ "step k-" (kind(s.kind)) } {
                        div.when { time datetime=(s.at) { (when(&s.at)) } }
                        div.what {
                            span.kind { (label(s.kind)) }
                            " "
                            @if s.kind == StepKind::DeadLetter {
                                a href={ "/ui/entries/" (s.source) } { (s.title) }
                            } @else {
                                strong { (s.title) }
                            }
                            dl.details {
                                @for d in &s.details {
                                    @if !d.value.is_empty() {
                                        dt { (d.name) } dd { (d.value) }
                                    }
                                }
                                @if s.kind != StepKind::DeadLetter {
                                    dt { "stored" } dd { (s.source) " #" (s.sequence) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn kind(k: StepKind) -> &'static str {
    match k {
        StepKind::Webhook => "webhook",
        StepKind::Event => "event",
        StepKind::Xero => "xero",
        StepKind::DeadLetter => "dead-letter",
    }
}

fn label(k: StepKind) -> &'static str {
    match k {
        StepKind::Webhook => "Webhook",
        StepKind::Event => "Event",
        StepKind::Xero => "Xero",
        StepKind::DeadLetter => "Review",
    }
}
