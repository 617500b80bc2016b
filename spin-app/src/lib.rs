//! The Dock verification-sessions API as a Spin HTTP component.
use spin_sdk::http::{IntoResponse, Request};

#[spin_sdk::http_service]
async fn handle(_req: Request) -> impl IntoResponse {
    (spin_sdk::http::StatusCode::NOT_FOUND, String::from("not yet"))
}
