//! The operator's HTTP endpoint: `/metrics` (Prometheus text),
//! `/healthz`, `/readyz`, and the admission webhook (`POST
//! /validate-firewallruleset`). Served in plain text on the metrics port
//! and over TLS on the webhook port ([`serve_tls`], certificates from
//! [`crate::certs::CertStore`], reloaded without restart).
//!
//! Hand-written HTTP/1.1 (a few fixed routes need no framework): request
//! line, headers, a `Content-Length` body of at most [`MAX_BODY`] bytes,
//! keep-alive until the client closes or says `Connection: close`.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tracing::debug;

use crate::webhook::{self, Webhook};

/// Largest request body read (an AdmissionReview carries the object and,
/// on updates, its old version: twice a spec of at most 256 KiB, plus
/// metadata).
pub const MAX_BODY: usize = 8 << 20;
/// A connection idle this long is closed.
const IDLE: Duration = Duration::from_secs(60);

/// What the endpoint serves.
pub struct Routes {
    pub registry: Arc<Registry>,
    /// The admission webhook, when this listener serves it.
    pub webhook: Option<Arc<Webhook>>,
    /// The webhook's certificate: `/readyz` fails until one is loaded.
    pub certs: Option<Arc<crate::certs::CertStore>>,
}

/// One request as read.
#[derive(Debug, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    pub close: bool,
}

/// One response.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub code: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

fn text(code: u16, body: impl Into<String>) -> Response {
    Response {
        code,
        content_type: "text/plain; charset=utf-8",
        body: body.into().into_bytes(),
    }
}

/// The response to a request.
pub async fn respond(req: &Request, routes: &Routes) -> Response {
    let path = req.path.split('?').next().unwrap_or_default();
    match (req.method.as_str(), path) {
        ("GET", "/metrics") => Response {
            code: 200,
            content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
            body: crate::metrics::encode(&routes.registry).into_bytes(),
        },
        ("GET", "/readyz") if routes.certs.as_ref().is_some_and(|c| !c.ready()) => {
            text(503, "the webhook's certificate is not loaded yet\n")
        }
        ("GET", "/healthz" | "/readyz") => text(200, "ok\n"),
        ("POST", webhook::PATH) => match &routes.webhook {
            Some(w) => match w.review(&req.body).await {
                Ok(body) => Response {
                    code: 200,
                    content_type: "application/json",
                    body,
                },
                Err(e) => {
                    w.metrics.admission("malformed", Duration::ZERO);
                    text(400, format!("{e}\n"))
                }
            },
            None => text(404, "not found\n"),
        },
        (_, webhook::PATH) => text(405, "use POST with an AdmissionReview\n"),
        _ => text(404, "not found\n"),
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Why a request could not be read; answered, then the connection closes.
enum ReadError {
    Closed,
    Reply(Response),
}

async fn read_request<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> Result<Request, ReadError> {
    let mut line = String::new();
    match tokio::time::timeout(IDLE, r.read_line(&mut line)).await {
        Ok(Ok(n)) if n > 0 => {}
        _ => return Err(ReadError::Closed),
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Err(ReadError::Reply(text(400, "malformed request line\n")));
    };
    let mut req = Request {
        method: method.to_string(),
        path: path.to_string(),
        close: parts.next() == Some("HTTP/1.0"),
        ..Default::default()
    };
    let mut length = None;
    loop {
        let mut h = String::new();
        match r.read_line(&mut h).await {
            Ok(n) if n > 0 => {}
            _ => return Err(ReadError::Closed),
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let Some((k, v)) = h.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.to_ascii_lowercase().as_str() {
            "content-length" => length = v.parse::<usize>().ok(),
            "connection" => req.close |= v.eq_ignore_ascii_case("close"),
            "transfer-encoding" => {
                return Err(ReadError::Reply(text(411, "send a Content-Length\n")))
            }
            _ => {}
        }
    }
    let length = match (length, req.method.as_str()) {
        (Some(n), _) => n,
        (None, "POST" | "PUT") => {
            return Err(ReadError::Reply(text(411, "send a Content-Length\n")))
        }
        (None, _) => 0,
    };
    if length > MAX_BODY {
        return Err(ReadError::Reply(text(
            413,
            format!("body of {length} bytes, at most {MAX_BODY}\n"),
        )));
    }
    req.body.resize(length, 0);
    r.read_exact(&mut req.body)
        .await
        .map_err(|_| ReadError::Closed)?;
    Ok(req)
}

async fn write_response<W: AsyncWrite + Unpin>(
    w: &mut W,
    resp: &Response,
    close: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: {}\r\n\r\n",
        resp.code,
        reason(resp.code),
        resp.content_type,
        resp.body.len(),
        if close { "close" } else { "keep-alive" }
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(&resp.body);
    w.write_all(&out).await?;
    w.flush().await
}

/// Serves requests on one connection until it closes.
pub async fn connection<S: AsyncRead + AsyncWrite + Unpin>(stream: S, routes: Arc<Routes>) {
    let (r, mut w) = tokio::io::split(stream);
    let mut r = BufReader::new(r);
    loop {
        let (resp, close) = match read_request(&mut r).await {
            Ok(req) => (respond(&req, &routes).await, req.close),
            Err(ReadError::Closed) => return,
            Err(ReadError::Reply(resp)) => (resp, true),
        };
        if write_response(&mut w, &resp, close).await.is_err() || close {
            let _ = w.shutdown().await;
            return;
        }
    }
}

/// Serves plain HTTP until the task is dropped.
pub async fn serve(listener: TcpListener, routes: Arc<Routes>) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        let _ = sock.set_nodelay(true);
        tokio::spawn(connection(sock, routes.clone()));
    }
}

/// Serves HTTPS until the task is dropped; each handshake gets the
/// certificate `acceptor`'s configuration resolves at that moment.
pub async fn serve_tls(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    routes: Arc<Routes>,
) {
    loop {
        let Ok((sock, peer)) = listener.accept().await else {
            continue;
        };
        // Answers are written whole: no reason to wait for an ACK (Nagle).
        let _ = sock.set_nodelay(true);
        let acceptor = acceptor.clone();
        let routes = routes.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(sock)).await {
                Ok(Ok(tls)) => connection(tls, routes).await,
                Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => debug!(%peer, "TLS handshake timed out"),
            }
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
        let routes = Arc::new(Routes {
            registry: Arc::new(reg),
            webhook: None,
            certs: None,
        });
        let server = tokio::spawn(serve(listener, routes));
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
            )
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
        // Not served on this listener.
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /validate-firewallruleset HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}")
            .await
            .unwrap();
        let mut buf = vec![0; 4096];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 404"));
        // Keep-alive: two requests on one connection.
        s.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").await.unwrap();
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        server.abort();
    }
}
