//! `run --http-listen ADDR`: read-only HTTP for Prometheus, load balancers and people.
//! `/metrics` (Prometheus text), `/status` (the status JSON), `/health` (200 unless the agent
//! does not answer or an instance is in FAULT), and Patroni-style role endpoints: `/master`
//! answers 200 where the instances hold their VIPs, `/backup` where they are BACKUP, 503
//! elsewhere; `?instance=NAME` asks about one instance. Nothing here changes state.

use axum::{
    Json, Router,
    extract::{Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use super::{Command, Status, metrics};

#[derive(Clone)]
struct Loop(mpsc::Sender<Command>);

impl Loop {
    /// The loop's snapshot, like a status socket client gets.
    async fn status(&self) -> Option<Status> {
        let (tx, rx) = oneshot::channel();
        self.0.send(Command::Status(tx)).await.ok()?;
        rx.await.ok()
    }
}

#[derive(Deserialize)]
struct Which {
    instance: Option<String>,
}

pub fn router(tx: mpsc::Sender<Command>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/status", get(status_page))
        .route("/health", get(health))
        .route("/master", get(master))
        .route("/backup", get(backup))
        .with_state(Loop(tx))
}

/// Serves until the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, tx: mpsc::Sender<Command>) {
    if let Err(e) = axum::serve(listener, router(tx)).await {
        tracing::error!(error = %e, "HTTP endpoints stopped");
    }
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({ "error": "the agent's loop does not answer" })),
    )
        .into_response()
}

async fn metrics_page(State(agent): State<Loop>) -> Response {
    let Some(status) = agent.status().await else {
        return unavailable();
    };
    match metrics::render(&status) {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn status_page(State(agent): State<Loop>) -> Response {
    match agent.status().await {
        Some(status) => Json(status).into_response(),
        None => unavailable(),
    }
}

async fn health(State(agent): State<Loop>) -> Response {
    let Some(status) = agent.status().await else {
        return unavailable();
    };
    let faults: Vec<&str> = status
        .instances
        .iter()
        .filter(|i| i.state == "FAULT")
        .map(|i| i.name.as_str())
        .collect();
    let code = if faults.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(serde_json::json!({ "fault": faults }))).into_response()
}

async fn master(state: State<Loop>, which: Query<Which>) -> Response {
    role(state, which, "MASTER").await
}

async fn backup(state: State<Loop>, which: Query<Which>) -> Response {
    role(state, which, "BACKUP").await
}

/// 200 if every instance asked about (all, or `?instance=`) is in `want` (MASTER: and holds
/// its VIPs), 503 if not, 404 for an unknown instance.
async fn role(State(agent): State<Loop>, Query(which): Query<Which>, want: &str) -> Response {
    let Some(status) = agent.status().await else {
        return unavailable();
    };
    let chosen: Vec<_> = status
        .instances
        .iter()
        .filter(|i| which.instance.as_ref().is_none_or(|n| *n == i.name))
        .collect();
    if chosen.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "no such instance" })),
        )
            .into_response();
    }
    let ok = chosen
        .iter()
        .all(|i| i.state == want && (want != "MASTER" || i.vips_held));
    let body: Vec<_> = chosen
        .iter()
        .map(|i| serde_json::json!({ "instance": i.name, "state": i.state, "vips_held": i.vips_held }))
        .collect();
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(serde_json::json!({ "role": want, "instances": body })),
    )
        .into_response()
}
