//! A small webhook receiver standing in for webhook-ingest: verifies with the platform verifier,
//! refuses bodies over 1 MiB with 413, and answers from a script, then 200.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ledgerline_platform::standard_webhooks::{Unverified, Verifier, unix_now};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub const LIMIT: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub status: u16,
    pub signature: String,
    pub attempt: u32,
    pub topic: String,
    pub at: Instant,
}

#[derive(Debug)]
pub struct RecvState {
    pub verifier: Verifier,
    /// `(status, Retry-After seconds)` for the next verified requests, in order.
    pub script: Mutex<VecDeque<(u16, Option<u64>)>>,
    pub log: Mutex<Vec<Received>>,
}

#[derive(Debug)]
pub struct Receiver {
    pub url: String,
    pub state: Arc<RecvState>,
}

impl Receiver {
    pub async fn start(verifier: Verifier) -> Self {
        let state = Arc::new(RecvState {
            verifier,
            script: Mutex::new(VecDeque::new()),
            log: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/webhooks/clarity/{store}", post(handle))
            .layer(DefaultBodyLimit::max(8 * LIMIT))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/webhooks/clarity/main",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    pub fn script(&self, answers: &[(u16, Option<u64>)]) {
        self.state
            .script
            .lock()
            .unwrap()
            .extend(answers.iter().copied());
    }

    pub fn log(&self) -> Vec<Received> {
        self.state.log.lock().unwrap().clone()
    }
}

async fn handle(State(st): State<Arc<RecvState>>, headers: HeaderMap, body: Bytes) -> Response {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut rec = Received {
        id: h("webhook-id"),
        status: 0,
        signature: h("webhook-signature"),
        attempt: h("x-clarity-attempt").parse().unwrap_or(0),
        topic: h("x-clarity-topic"),
        at: Instant::now(),
    };
    let (status, retry_after) = if body.len() > LIMIT {
        (413, None)
    } else {
        match Unverified::from_headers(&headers, body).verify(&st.verifier, unix_now()) {
            Err(_) => (401, None),
            Ok(_) => st.script.lock().unwrap().pop_front().unwrap_or((200, None)),
        }
    };
    rec.status = status;
    st.log.lock().unwrap().push(rec);
    let mut resp = StatusCode::from_u16(status).unwrap().into_response();
    if let Some(s) = retry_after {
        resp.headers_mut()
            .insert("retry-after", s.to_string().parse().unwrap());
    }
    resp
}
