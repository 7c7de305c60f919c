//! `metrics`: a small HTTP/1.1 server for Prometheus. Each `GET /metrics` asks the core for a
//! stats snapshot over its control socket and answers it in the text exposition format
//! ([`crate::metrics::render`]); any other path is 404. It serves until SIGINT, SIGTERM or
//! SIGHUP.
//!
//! Deliberately small and blocking (std::net only): one thread per connection, at most
//! [`MAX_CONNECTIONS`] at once (more are answered 503 and closed), request heads bounded to
//! [`MAX_HEAD`] bytes, reads and writes bounded by [`IO_TIMEOUT`], one request per connection
//! (`Connection: close`). A scrape while the instance is down is answered 503, so Prometheus
//! records `up == 0`; the exporter keeps serving and picks the instance up again when a core
//! answers on the same socket.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use netvm_api::report::Report;

use crate::error::ManagerError;
use crate::instance::{self, Target};
use crate::metrics;
use crate::proc::POLL;
use crate::signals;
use crate::up::note;

/// Most bytes of a request head (request line and headers).
pub const MAX_HEAD: usize = 8192;
/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Read and write timeout of a connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Content-Type.
    pub content_type: &'static str,
    /// Extra header lines (`Name: value`).
    pub headers: Vec<String>,
    /// Body (left out on the wire for HEAD).
    pub body: String,
    /// The request was HEAD.
    pub head_only: bool,
}

const TEXT: &str = "text/plain; charset=utf-8";

impl Response {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: TEXT,
            headers: Vec::new(),
            body: body.into(),
            head_only: false,
        }
    }

    fn reason(&self) -> &'static str {
        match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            505 => "HTTP Version Not Supported",
            _ => "Error",
        }
    }

    /// The response as it goes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut o = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.reason(),
            self.content_type,
            self.body.len()
        );
        for h in &self.headers {
            o.push_str(h);
            o.push_str("\r\n");
        }
        o.push_str("\r\n");
        if !self.head_only {
            o.push_str(&self.body);
        }
        o.into_bytes()
    }
}

/// The answer to one complete request head; `scrape` fetches and renders the metrics (or says
/// why it cannot).
pub fn respond(head: &[u8], scrape: impl FnOnce() -> Result<String, String>) -> Response {
    let Ok(head) = std::str::from_utf8(head) else {
        return Response::text(400, "request head is not UTF-8\n");
    };
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Response::text(400, "malformed request line\n");
    };
    if !version.starts_with("HTTP/1.") {
        return Response::text(505, "only HTTP/1.x is served\n");
    }
    let path = target.split(['?', '#']).next().unwrap_or("");
    if path != "/metrics" {
        return Response::text(404, "not found: this server serves /metrics only\n");
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            let mut r = Response::text(405, "only GET and HEAD\n");
            r.headers.push("Allow: GET, HEAD".into());
            return r;
        }
    };
    let mut r = match scrape() {
        Ok(body) => Response {
            status: 200,
            content_type: metrics::CONTENT_TYPE,
            headers: Vec::new(),
            body,
            head_only,
        },
        Err(why) => Response::text(503, format!("{why}\n")),
    };
    r.head_only = head_only;
    r
}

/// What reading a request head gave.
enum Head {
    Complete(Vec<u8>),
    TooLarge,
    TimedOut,
    /// The peer closed or failed before a whole head: nothing to answer.
    Gone,
}

fn read_head(s: &mut impl Read) -> Head {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return Head::Gone,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                let end = buf
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map(|p| p + 4)
                    .or_else(|| buf.windows(2).position(|w| w == b"\n\n").map(|p| p + 2));
                if let Some(end) = end.filter(|e| *e <= MAX_HEAD) {
                    buf.truncate(end);
                    return Head::Complete(buf);
                }
                if buf.len() > MAX_HEAD {
                    return Head::TooLarge;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Head::TimedOut;
            }
            Err(_) => return Head::Gone,
        }
    }
}

/// Scrapes the core on `socket` for the instance `name`.
fn scrape(socket: &Path, name: &str) -> Result<String, String> {
    instance::fetch(socket)
        .map(|r: Report| metrics::render(name, &r))
        .map_err(|e| format!("instance {name:?}: {}", crate::error::chain(&e)))
}

fn serve_connection(mut s: TcpStream, socket: &Path, name: &str) {
    if s.set_nonblocking(false).is_err()
        || s.set_read_timeout(Some(IO_TIMEOUT)).is_err()
        || s.set_write_timeout(Some(IO_TIMEOUT)).is_err()
    {
        return;
    }
    let r = match read_head(&mut s) {
        Head::Complete(h) => respond(&h, || scrape(socket, name)),
        Head::TooLarge => Response::text(431, format!("request head over {MAX_HEAD} bytes\n")),
        Head::TimedOut => Response::text(408, "request head not complete in time\n"),
        Head::Gone => return,
    };
    let _ = s.write_all(&r.to_bytes());
    let _ = s.flush();
    let _ = s.shutdown(std::net::Shutdown::Write);
}

/// A bound metrics server for one instance.
pub struct Server {
    listener: TcpListener,
    socket: Arc<PathBuf>,
    name: Arc<String>,
    active: Arc<AtomicUsize>,
}

impl Server {
    /// Binds `listen` (`ADDR:PORT`; port 0 picks a free one) for the core on `socket`.
    pub fn bind(listen: &str, socket: PathBuf, name: String) -> Result<Self, ManagerError> {
        let err = |source| ManagerError::Listen {
            addr: listen.to_string(),
            source,
        };
        let listener = TcpListener::bind(listen).map_err(err)?;
        listener.set_nonblocking(true).map_err(err)?;
        Ok(Self {
            listener,
            socket: Arc::new(socket),
            name: Arc::new(name),
            active: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop()` says so (polled every [`POLL`]).
    pub fn run(&self, stop: impl Fn() -> bool) {
        while !stop() {
            let (s, _) = match self.listener.accept() {
                Ok(c) => c,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    std::thread::sleep(POLL);
                    continue;
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    note(format!("metrics: accept failed: {e}"));
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            };
            if self.active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                self.active.fetch_sub(1, Ordering::SeqCst);
                let mut s = s;
                let _ = s.set_write_timeout(Some(Duration::from_millis(100)));
                let _ = s.write_all(&Response::text(503, "too many connections\n").to_bytes());
                continue;
            }
            let (socket, name, active) = (
                Arc::clone(&self.socket),
                Arc::clone(&self.name),
                Arc::clone(&self.active),
            );
            let spawned = std::thread::Builder::new()
                .name("metrics-conn".into())
                .spawn(move || {
                    serve_connection(s, &socket, &name);
                    active.fetch_sub(1, Ordering::SeqCst);
                });
            if spawned.is_err() {
                self.active.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// `metrics --listen ADDR:PORT`: checks that the instance answers, binds, prints
/// `serving metrics of "NAME" on http://ADDR:PORT/metrics` on stderr and serves until a
/// signal.
pub fn serve(target: &Target, listen: &str) -> Result<(), ManagerError> {
    let (socket, name) = instance::locate(target)?;
    if let Err(e) = instance::fetch(&socket) {
        return Err(ManagerError::NotRunning {
            why: format!(
                "instance {name:?} does not answer ({})",
                crate::error::chain(&e)
            ),
        });
    }
    let server = Server::bind(listen, socket, name.clone())?;
    signals::install();
    let addr = server
        .local_addr()
        .map_or_else(|_| listen.to_string(), |a| a.to_string());
    note(format!(
        "serving metrics of {name:?} on http://{addr}/metrics"
    ));
    server.run(|| signals::received().is_some());
    note(format!("stopped serving metrics of {name:?}"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::BufRead as _;
    use std::os::unix::net::UnixListener;
    use std::sync::atomic::AtomicBool;

    use super::*;

    fn ok() -> Result<String, String> {
        Ok("netvm_x 1\n".into())
    }

    #[test]
    fn routes_and_methods() {
        let r = respond(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", ok);
        assert_eq!((r.status, r.content_type), (200, metrics::CONTENT_TYPE));
        assert_eq!(r.body, "netvm_x 1\n");
        let r = respond(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", ok);
        assert_eq!(r.status, 200);
        let r = respond(b"HEAD /metrics HTTP/1.1\r\n\r\n", ok);
        assert_eq!(r.status, 200);
        let wire = String::from_utf8(r.to_bytes()).unwrap();
        assert!(wire.contains("Content-Length: 10\r\n"), "{wire}");
        assert!(wire.ends_with("\r\n\r\n"), "HEAD has no body: {wire}");
        for path in ["/", "/metricsx", "/metrics/", "/favicon.ico"] {
            let r = respond(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes(), || {
                panic!("no scrape for {path}")
            });
            assert_eq!(r.status, 404, "{path}");
        }
        let r = respond(b"POST /metrics HTTP/1.1\r\n\r\n", ok);
        assert_eq!(r.status, 405);
        assert_eq!(r.headers, ["Allow: GET, HEAD"]);
        assert_eq!(respond(b"GET /metrics\r\n\r\n", ok).status, 400);
        assert_eq!(respond(b"\xff\xfe\r\n\r\n", ok).status, 400);
        assert_eq!(respond(b"GET /metrics HTTP/2\r\n\r\n", ok).status, 505);
        let r = respond(b"GET /metrics HTTP/1.1\r\n\r\n", || Err("down".into()));
        assert_eq!((r.status, r.body.as_str()), (503, "down\n"));
    }

    #[test]
    fn wire_format() {
        let r = Response::text(404, "nope\n");
        assert_eq!(
            String::from_utf8(r.to_bytes()).unwrap(),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\nConnection: close\r\n\r\nnope\n"
        );
    }

    #[test]
    fn heads_are_bounded() {
        let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        big.extend_from_slice(b"\r\n\r\n");
        assert!(matches!(read_head(&mut &big[..]), Head::TooLarge));
        let ok = b"GET /metrics HTTP/1.1\r\n\r\nbody";
        let Head::Complete(h) = read_head(&mut &ok[..]) else {
            panic!("incomplete")
        };
        assert_eq!(h, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(matches!(read_head(&mut &b"GET /"[..]), Head::Gone));
    }

    /// A fake core on a Unix socket answering `stats`; the server in a thread; real TCP.
    #[test]
    fn serves_a_fake_core_over_tcp() {
        let dir = std::env::temp_dir().join(format!("netvm-exporter-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("control.sock");
        let core = UnixListener::bind(&sock).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let fake = std::thread::spawn(move || {
            for s in core.incoming().take(2) {
                let mut s = s.unwrap();
                let mut line = String::new();
                std::io::BufReader::new(&s).read_line(&mut line).unwrap();
                assert_eq!(line.trim(), r#"{"cmd":"stats"}"#);
                let answer = serde_json::json!({"ok": true, "stats": {"transmitted": 1234}});
                writeln!(s, "{answer}").unwrap();
            }
        });
        let server = Server::bind("127.0.0.1:0", sock.clone(), "t\"1".into()).unwrap();
        let addr = server.local_addr().unwrap();
        let st = Arc::clone(&stop);
        let srv = std::thread::spawn(move || server.run(|| st.load(Ordering::SeqCst)));
        let get = |req: &str| {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(req.as_bytes()).unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).unwrap();
            out
        };
        let out = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(
            out.contains("\r\nnetvm_transmitted_packets_total{instance=\"t\\\"1\"} 1234\n")
                || out.contains("\nnetvm_transmitted_packets_total{instance=\"t\\\"1\"} 1234\n"),
            "{out}"
        );
        assert!(get("GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        get("HEAD /metrics HTTP/1.1\r\n\r\n");
        fake.join().unwrap();
        // The core is gone: 503, and the server keeps serving.
        std::fs::remove_file(&sock).unwrap();
        let out = get("GET /metrics HTTP/1.1\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 503 "), "{out}");
        assert!(out.contains("instance \"t\\\"1\""), "{out}");
        stop.store(true, Ordering::SeqCst);
        srv.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
