//! A minimal HTTP endpoint for Prometheus: `GET /metrics` (any path) answers
//! the registry in text format. No framework: one request per connection.

use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `registry` on `listener` until the task is dropped.
pub async fn metrics(listener: TcpListener, registry: Arc<Registry>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            // The request itself does not matter; read its head and answer.
            let _ = conn.read(&mut buf).await;
            let body = crate::metrics::encode(&registry);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(body.as_bytes()).await;
        });
    }
}
