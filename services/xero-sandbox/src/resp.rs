//! A buffered response (so idempotent replays can store and repeat it) and Xero's body shapes.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use uuid::Uuid;

/// A complete response held in memory.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Resp {
    /// A JSON response from already-serialized bytes.
    pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> Self {
        Self {
            status,
            content_type: "application/json; charset=utf-8",
            body,
            headers: Vec::new(),
        }
    }

    /// A plain-text response.
    pub fn text(status: StatusCode, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

impl IntoResponse for Resp {
    fn into_response(self) -> Response {
        let mut r = Response::new(Body::from(self.body));
        *r.status_mut() = self.status;
        let h = r.headers_mut();
        if !h.contains_key("content-type") {
            h.insert("content-type", HeaderValue::from_static(self.content_type));
        }
        for (k, v) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(HeaderName::from_static(k), v);
            }
        }
        r
    }
}

/// Xero's 404: plain text, not JSON.
pub fn not_found() -> Resp {
    Resp::text(
        StatusCode::NOT_FOUND,
        "The resource you're looking for cannot be found",
    )
}

/// The problem-style JSON body of 401 and 403.
pub fn problem(status: StatusCode, title: &str, detail: &str) -> Resp {
    let body = serde_json::json!({
        "Type": null,
        "Title": title,
        "Status": status.as_u16(),
        "Detail": detail,
        "Instance": Uuid::new_v4(),
        "Extensions": {}
    });
    Resp::json_bytes(status, body.to_string().into_bytes())
}

/// A 400 with a plain ValidationException message and no elements.
pub fn bad_request(message: &str) -> Resp {
    let body = serde_json::json!({
        "ErrorNumber": 10,
        "Type": "ValidationException",
        "Message": message,
        "Elements": []
    });
    Resp::json_bytes(StatusCode::BAD_REQUEST, body.to_string().into_bytes())
}

/// A 400 ValidationException listing the failed elements (already serialized JSON objects).
pub fn validation_exception(elements: &[String]) -> Resp {
    let body = format!(
        r#"{{"ErrorNumber":10,"Type":"ValidationException","Message":"A validation exception occurred","Elements":[{}]}}"#,
        elements.join(",")
    );
    Resp::json_bytes(StatusCode::BAD_REQUEST, body.into_bytes())
}

/// The 200 envelope: `Id`, `Status`, `ProviderName`, `DateTimeUTC`, optional `pagination`, and the
/// plural collection key holding already-serialized elements.
pub fn envelope(
    provider: &str,
    key: &str,
    elements: &[String],
    pagination: Option<&impl Serialize>,
) -> Resp {
    let mut body = String::with_capacity(128 + elements.iter().map(String::len).sum::<usize>());
    body.push_str(&format!(
        r#"{{"Id":"{}","Status":"OK","ProviderName":{},"DateTimeUTC":"{}""#,
        Uuid::new_v4(),
        serde_json::Value::String(provider.to_string()),
        crate::xjson::ms_date(chrono::Utc::now()).replace("+0000", "")
    ));
    if let Some(p) = pagination {
        body.push_str(r#","pagination":"#);
        body.push_str(&serde_json::to_string(p).unwrap_or_else(|_| "null".into()));
    }
    body.push_str(&format!(r#","{key}":["#));
    body.push_str(&elements.join(","));
    body.push_str("]}");
    Resp::json_bytes(StatusCode::OK, body.into_bytes())
}

/// Serializes one element.
pub fn ser<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}
