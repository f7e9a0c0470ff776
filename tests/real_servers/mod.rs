//! Real web servers from Debian's packages (installed by scripts/setup.sh) for the conformance
//! matrix: each runs in the foreground as our child, in its own process group, on free
//! loopback ports, with its configuration, document root, certificate and logs in a temp dir;
//! dropping the [`Server`] stops the group by its pid and removes the dir.
//!
//! The configurations follow each package's stock one (Debian's nginx.conf, apache2.conf with
//! its default modules, Caddy's defaults) in everything that touches connection lifecycle:
//! keep-alive request limits and timeouts are the servers' own defaults. Where a default is
//! changed, the endpoint says so in its label (`retiring`: a small request limit so that
//! connections are retired many times within a short run).
//!
//! A server whose binary is missing is skipped with a note, unless `LOADGATE_REQUIRE_SERVERS`
//! is set (CI sets it), which turns the skip into a failure.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// How the client talks to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1 over TCP.
    H1,
    /// HTTP/1.1 over TLS (ALPN http/1.1).
    TlsH1,
    /// HTTP/2 over TLS (ALPN h2).
    H2,
    /// HTTP/2 over TCP by prior knowledge.
    H2c,
}

impl Proto {
    /// The plan's `defaults.http`.
    pub fn http(self) -> &'static str {
        match self {
            Proto::H1 | Proto::TlsH1 => "\"1.1\"",
            Proto::H2 | Proto::H2c => "\"2\"",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Proto::H1 => "http/1.1",
            Proto::TlsH1 => "tls http/1.1",
            Proto::H2 => "h2 (tls)",
            Proto::H2c => "h2c",
        }
    }

    pub fn is_h2(self) -> bool {
        matches!(self, Proto::H2 | Proto::H2c)
    }
}

/// What the matrix sends to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// The request mix (200, HEAD, 204, 304, gzip, 1 MiB), closed and open model.
    Mix,
    /// POSTs at 10/s from one connection to a server that closes idle connections after
    /// 30 ms: each POST finds its connection closed (FIN, or TLS close_notify) while idle.
    IdlePost,
}

/// One URL of a server and how to speak to it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub proto: Proto,
    pub url: String,
    /// Extra words for the matrix (`retiring after 10`).
    pub note: &'static str,
    pub load: Load,
    /// The server answers with chunked bodies when it compresses (HTTP/1.1 only).
    pub chunked_gzip: bool,
    /// The server answers `GET /204` with 204 (Python's http.server serves files only).
    pub has_204: bool,
    /// The server answers HTTP/1.0 and closes after every response.
    pub http10: bool,
    /// The open model's rate and the closed model's connections for the mix (a server that
    /// takes one connection per request at a time gets less).
    pub open_rate: u32,
    pub closed_vus: u32,
}

/// A running server; stopped (its whole process group) on drop.
pub struct Server {
    pub name: &'static str,
    pub endpoints: Vec<Endpoint>,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The access log, one line per request the server processed.
    access_log: PathBuf,
    /// Lines of the access log that are not requests (Python logs to stderr).
    log_filter: Option<&'static str>,
}

/// `Some(path)` of the first existing candidate.
fn find(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// The server's binary, or `None` to skip (a failure when `LOADGATE_REQUIRE_SERVERS` is set).
fn binary(name: &str, candidates: &[&str]) -> Option<PathBuf> {
    let found = find(candidates);
    if found.is_none() {
        if std::env::var_os("LOADGATE_REQUIRE_SERVERS").is_some() {
            panic!(
                "{name} is not installed ({}) and LOADGATE_REQUIRE_SERVERS is set: run scripts/setup.sh",
                candidates.join(", ")
            );
        }
        eprintln!("skipping {name}: not installed (scripts/setup.sh installs it)");
    }
    found
}

/// A free port on 127.0.0.1 (bound, then released for the server to take).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The document root every server serves (the same bytes everywhere):
/// - `index.html`, 612 bytes, modified 2020-01-01 00:00:00 UTC (for `If-Modified-Since` 304s);
/// - `page.html`, 64 KiB of compressible HTML (gzip when asked: chunked on HTTP/1.1);
/// - `large.bin`, 1 MiB.
pub const INDEX_MARK: &str = "loadgate-conformance";
pub const IMS: &str = "Wed, 01 Jan 2020 00:00:00 GMT";

fn write_docroot(dir: &Path) -> PathBuf {
    let www = dir.join("www");
    std::fs::create_dir(&www).unwrap();
    let mut index = format!("<!DOCTYPE html><html><body><h1>{INDEX_MARK}</h1><p>");
    while index.len() < 600 {
        index.push_str("lorem ipsum ");
    }
    index.push_str("</p></body></html>\n");
    std::fs::write(www.join("index.html"), &index).unwrap();
    let f = std::fs::File::options()
        .write(true)
        .open(www.join("index.html"))
        .unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800))
        .unwrap();
    let mut page = String::from("<!DOCTYPE html><html><body>");
    let mut i = 0u64;
    while page.len() < 64 * 1024 {
        page.push_str(&format!(
            "<p>row {i}: the quick brown fox jumps over the lazy dog</p>\n"
        ));
        i += 1;
    }
    page.push_str("</body></html>\n");
    std::fs::write(www.join("page.html"), page).unwrap();
    let large: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    std::fs::write(www.join("large.bin"), large).unwrap();
    www
}

/// A self-signed certificate for `localhost` and 127.0.0.1: (cert.pem, key.pem).
fn write_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// A temp dir the servers' unprivileged workers (nobody, www-data) can read.
fn server_dir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("loadgate-{name}-"))
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

impl Server {
    /// Start `cmd` in its own process group and wait until every port accepts connections.
    fn spawn(
        name: &'static str,
        mut cmd: Command,
        dir: tempfile::TempDir,
        ports: &[u16],
        endpoints: Vec<Endpoint>,
        access_log: PathBuf,
        log_filter: Option<&'static str>,
    ) -> Server {
        let out = std::fs::File::create(dir.path().join("stdout.log")).unwrap();
        let err = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let mut srv = Server {
            name,
            endpoints,
            child: Some(child),
            dir,
            access_log,
            log_filter,
        };
        let t0 = Instant::now();
        for port in ports {
            while TcpStream::connect(("127.0.0.1", *port)).is_err() {
                if let Some(status) = srv.child.as_mut().unwrap().try_wait().unwrap() {
                    panic!("{name} exited at start ({status}): {}", srv.logs());
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(20),
                    "{name} did not listen on port {port} within 20 s: {}",
                    srv.logs()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        srv
    }

    /// The server's own output and error log, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for f in ["stdout.log", "stderr.log", "error.log"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.path().join(f)) {
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                s.push_str(&format!("\n--- {f} (last lines) ---\n"));
                for l in tail.into_iter().rev() {
                    s.push_str(l);
                    s.push('\n');
                }
            }
        }
        s
    }

    /// Requests the server has logged so far.
    pub fn logged_requests(&self) -> u64 {
        let text = std::fs::read_to_string(&self.access_log).unwrap_or_default();
        text.lines()
            .filter(|l| self.log_filter.is_none_or(|f| l.contains(f)))
            .count() as u64
    }

    /// Wait (at most 10 s) until the access log holds `n` requests; returns what it holds
    /// then (more than `n` when the server processed a request twice).
    pub fn wait_logged(&self, n: u64) -> u64 {
        let t0 = Instant::now();
        loop {
            let got = self.logged_requests();
            if got >= n || t0.elapsed() > Duration::from_secs(10) {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // The whole group (nginx's and Apache's workers too), by the leader's pid.
        let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGTERM);
        let t0 = Instant::now();
        while child.try_wait().ok().flatten().is_none() && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
        // Workers that outlived the leader (they are in its group): wait until none is left.
        let t0 = Instant::now();
        while nix::sys::signal::kill(group, None).is_ok() && t0.elapsed() < Duration::from_secs(5) {
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn write(path: &Path, text: &str) {
    std::fs::File::create(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// nginx with Debian's stock nginx.conf (worker_processes auto, sendfile, tcp_nopush, gzip
/// on, keepalive_timeout 65, keepalive_requests at its default 1000, which applies to h2
/// too). Endpoints: HTTP/1.1, TLS without http2 (as Debian's commented-out `listen 443 ssl`),
/// TLS with `http2` (ALPN h2), h2c; a `retiring` server with `keepalive_requests 10` (HTTP/1.1,
/// TLS, h2: a GOAWAY every 10 streams); an `idle` server with `keepalive_timeout 30ms`
/// (HTTP/1.1 and TLS) that answers `POST /post`.
pub fn nginx() -> Option<Server> {
    let bin = binary("nginx", &["/usr/sbin/nginx"])?;
    let dir = server_dir("nginx");
    let d = dir.path();
    let www = write_docroot(d);
    let (cert, key) = write_cert(d);
    let ports = [(); 9].map(|_| free_port());
    let [h1, tls, h2tls, h2c, r_h1, r_tls, r_h2, i_h1, i_tls] = ports;
    let user = if is_root() {
        "user nobody nogroup;"
    } else {
        ""
    };
    let site = |listen: &[String], extra: &str| {
        let listen: String = listen
            .iter()
            .map(|l| format!("        listen 127.0.0.1:{l};\n"))
            .collect();
        format!(
            r#"    server {{
{listen}        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {www};
        index index.html;
        {extra}
        location = /204 {{ return 204; }}
        location = /post {{ return 200 "ok\n"; }}
    }}
"#,
            cert = cert.display(),
            key = key.display(),
            www = www.display(),
        )
    };
    let conf = format!(
        r#"{user}
worker_processes auto;
pid {d}/nginx.pid;
error_log {d}/error.log;
daemon off;
events {{ worker_connections 768; }}
http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    access_log {d}/access.log;
    gzip on;
    keepalive_timeout 65;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{stock}{retiring}{idle}}}
"#,
        d = d.display(),
        stock = site(
            &[
                format!("{h1}"),
                format!("{tls} ssl"),
                format!("{h2tls} ssl http2"),
                format!("{h2c} http2"),
            ],
            ""
        ),
        retiring = site(
            &[
                format!("{r_h1}"),
                format!("{r_tls} ssl"),
                format!("{r_h2} ssl http2"),
            ],
            "keepalive_requests 10;"
        ),
        idle = site(
            &[format!("{i_h1}"), format!("{i_tls} ssl")],
            "keepalive_timeout 30ms;"
        ),
    );
    write(&d.join("nginx.conf"), &conf);
    let mut cmd = Command::new(bin);
    cmd.args(["-p", &d.display().to_string(), "-c"])
        .arg(d.join("nginx.conf"));
    let ep = |proto, url: String, note, load| Endpoint {
        proto,
        url,
        note,
        load,
        chunked_gzip: true,
        has_204: true,
        http10: false,
        open_rate: 1000,
        closed_vus: 4,
    };
    let endpoints = vec![
        ep(Proto::H1, format!("http://127.0.0.1:{h1}"), "", Load::Mix),
        ep(
            Proto::TlsH1,
            format!("https://localhost:{tls}"),
            "",
            Load::Mix,
        ),
        ep(
            Proto::H2,
            format!("https://localhost:{h2tls}"),
            "",
            Load::Mix,
        ),
        ep(Proto::H2c, format!("http://127.0.0.1:{h2c}"), "", Load::Mix),
        ep(
            Proto::H1,
            format!("http://127.0.0.1:{r_h1}"),
            "keepalive_requests 10",
            Load::Mix,
        ),
        ep(
            Proto::TlsH1,
            format!("https://localhost:{r_tls}"),
            "keepalive_requests 10",
            Load::Mix,
        ),
        ep(
            Proto::H2,
            format!("https://localhost:{r_h2}"),
            "keepalive_requests 10: GOAWAY",
            Load::Mix,
        ),
        ep(
            Proto::H1,
            format!("http://127.0.0.1:{i_h1}"),
            "keepalive_timeout 30ms: FIN while idle",
            Load::IdlePost,
        ),
        ep(
            Proto::TlsH1,
            format!("https://localhost:{i_tls}"),
            "keepalive_timeout 30ms: close_notify while idle",
            Load::IdlePost,
        ),
    ];
    let log = d.join("access.log");
    Some(Server::spawn(
        "nginx", cmd, dir, &ports, endpoints, log, None,
    ))
}

/// Apache httpd with Debian's stock settings (mpm_event; KeepAlive On, MaxKeepAliveRequests
/// 100, KeepAliveTimeout 5; mod_deflate for text types) and mod_http2 (`Protocols h2 h2c
/// http/1.1`, so h2c by prior knowledge on the plain port).
pub fn apache() -> Option<Server> {
    let bin = binary("apache2", &["/usr/sbin/apache2"])?;
    let dir = server_dir("apache2");
    let d = dir.path();
    let www = write_docroot(d);
    let (cert, key) = write_cert(d);
    let [h1, tls] = [(); 2].map(|_| free_port());
    let m = "/usr/lib/apache2/modules";
    let modules = [
        "mpm_event",
        "authz_core",
        "mime",
        "dir",
        "alias",
        "filter",
        "deflate",
        "socache_shmcb",
        "ssl",
        "http2",
    ]
    .iter()
    .map(|n| format!("LoadModule {n}_module {m}/mod_{n}.so\n"))
    .collect::<String>();
    let user = if is_root() {
        "User nobody\nGroup nogroup\n"
    } else {
        ""
    };
    let conf = format!(
        r#"ServerRoot {d}
ServerName localhost
PidFile {d}/apache2.pid
DefaultRuntimeDir {d}
Mutex file:{d} default
ErrorLog {d}/error.log
LogLevel warn
{modules}{user}Timeout 300
KeepAlive On
MaxKeepAliveRequests 100
KeepAliveTimeout 5
Listen 127.0.0.1:{h1}
Listen 127.0.0.1:{tls}
TypesConfig /etc/mime.types
Protocols h2 h2c http/1.1
DocumentRoot {www}
<Directory {www}>
    Require all granted
</Directory>
DirectoryIndex index.html
Redirect 204 /204
AddOutputFilterByType DEFLATE text/html text/plain text/xml text/css application/javascript
LogFormat "%h %l %u %t \"%r\" %>s %O" common
CustomLog {d}/access.log common
SSLSessionCache shmcb:{d}/ssl_scache(512000)
<VirtualHost 127.0.0.1:{tls}>
    SSLEngine on
    SSLCertificateFile {cert}
    SSLCertificateKeyFile {key}
</VirtualHost>
"#,
        d = d.display(),
        www = www.display(),
        cert = cert.display(),
        key = key.display(),
    );
    write(&d.join("apache2.conf"), &conf);
    let mut cmd = Command::new(bin);
    cmd.arg("-f")
        .arg(d.join("apache2.conf"))
        .arg("-DFOREGROUND");
    let ep = |proto, url: String| Endpoint {
        proto,
        url,
        note: "",
        load: Load::Mix,
        chunked_gzip: false,
        has_204: true,
        http10: false,
        open_rate: 1000,
        closed_vus: 4,
    };
    let endpoints = vec![
        ep(Proto::H1, format!("http://127.0.0.1:{h1}")),
        ep(Proto::TlsH1, format!("https://localhost:{tls}")),
        ep(Proto::H2, format!("https://localhost:{tls}")),
        ep(Proto::H2c, format!("http://127.0.0.1:{h1}")),
    ];
    let log = d.join("access.log");
    Some(Server::spawn(
        "apache2",
        cmd,
        dir,
        &[h1, tls],
        endpoints,
        log,
        None,
    ))
}

/// Caddy with its defaults (Go's net/http: no keep-alive request limit, idle timeout 5 min),
/// `encode gzip`, TLS from our certificate, and h2c enabled on the plain port.
pub fn caddy() -> Option<Server> {
    let bin = binary("caddy", &["/usr/bin/caddy"])?;
    let dir = server_dir("caddy");
    let d = dir.path();
    let www = write_docroot(d);
    let (cert, key) = write_cert(d);
    let [h1, tls] = [(); 2].map(|_| free_port());
    let conf = format!(
        r#"{{
    admin off
    auto_https off
    storage file_system {d}/data
    servers 127.0.0.1:{h1} {{
        protocols h1 h2c
    }}
}}
http://127.0.0.1:{h1} {{
    bind 127.0.0.1
    root * {www}
    encode gzip
    respond /204 204
    file_server
    log {{
        output file {d}/access.log
    }}
}}
https://localhost:{tls} {{
    bind 127.0.0.1
    tls {cert} {key}
    root * {www}
    encode gzip
    respond /204 204
    file_server
    log {{
        output file {d}/access.log
    }}
}}
"#,
        d = d.display(),
        www = www.display(),
        cert = cert.display(),
        key = key.display(),
    );
    write(&d.join("Caddyfile"), &conf);
    let mut cmd = Command::new(bin);
    cmd.args(["run", "--adapter", "caddyfile", "--config"])
        .arg(d.join("Caddyfile"))
        .env("HOME", d)
        .env("XDG_DATA_HOME", d.join("data"))
        .env("XDG_CONFIG_HOME", d.join("config"));
    let ep = |proto, url: String| Endpoint {
        proto,
        url,
        note: "",
        load: Load::Mix,
        chunked_gzip: true,
        has_204: true,
        http10: false,
        open_rate: 1000,
        closed_vus: 4,
    };
    let endpoints = vec![
        ep(Proto::H1, format!("http://127.0.0.1:{h1}")),
        ep(Proto::TlsH1, format!("https://localhost:{tls}")),
        ep(Proto::H2, format!("https://localhost:{tls}")),
        ep(Proto::H2c, format!("http://127.0.0.1:{h1}")),
    ];
    let log = d.join("access.log");
    Some(Server::spawn(
        "caddy",
        cmd,
        dir,
        &[h1, tls],
        endpoints,
        log,
        None,
    ))
}

/// Python's `http.server` (Debian's python3): HTTP/1.0, one response per connection, closed
/// after it; it logs each request to stderr.
pub fn python() -> Option<Server> {
    let bin = binary("python3 (http.server)", &["/usr/bin/python3"])?;
    let dir = server_dir("python");
    let d = dir.path();
    let www = write_docroot(d);
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
        .arg(&www)
        .arg(port.to_string());
    let endpoints = vec![Endpoint {
        proto: Proto::H1,
        url: format!("http://127.0.0.1:{port}"),
        note: "HTTP/1.0, closes after each response",
        load: Load::Mix,
        chunked_gzip: false,
        has_204: false,
        http10: true,
        open_rate: 200,
        closed_vus: 2,
    }];
    let log = d.join("stderr.log");
    // The readiness probe's bare connection logs nothing; requests log `"GET / HTTP/1.1" 200`.
    Some(Server::spawn(
        "python3 http.server",
        cmd,
        dir,
        &[port],
        endpoints,
        log,
        Some("\" "),
    ))
}
