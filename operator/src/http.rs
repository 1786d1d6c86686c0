//! A tiny HTTP endpoint for `/metrics` (Prometheus text) and `/healthz`.
//! Hand-written on a TCP listener: two fixed routes need no framework.

use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The response to a request line (`GET /metrics HTTP/1.1`).
pub fn respond(request_line: &str, registry: &Registry) -> (u16, &'static str, String) {
    let mut parts = request_line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some("GET"), Some("/metrics")) => (
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            crate::metrics::encode(registry),
        ),
        (Some("GET"), Some("/healthz" | "/readyz")) => (200, "text/plain", "ok\n".into()),
        _ => (404, "text/plain", "not found\n".into()),
    }
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let n =
                match tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut buf))
                    .await
                {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
            let req = String::from_utf8_lossy(&buf[..n]);
            let line = req.lines().next().unwrap_or_default();
            let (code, ctype, body) = respond(line, &registry);
            let reason = if code == 200 { "OK" } else { "Not Found" };
            let head = format!(
                "HTTP/1.1 {code} {reason}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_metrics_and_health_over_tcp() {
        let mut reg = Registry::default();
        let m = crate::Metrics::default().register(&mut reg);
        m.reconciles.inc();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, Arc::new(reg)));
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let metrics = get("/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
        assert!(
            metrics.contains("linx_operator_reconciles_total 1"),
            "{metrics}"
        );
        assert!(get("/healthz").await.ends_with("\r\n\r\nok\n"));
        assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
        server.abort();
    }
}
