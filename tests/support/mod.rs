//! Shared parts for the end-to-end tests: guest components built from source,
//! a real SMTP server process, a loopback Teams stand-in, the CLI.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// The component of a guest crate (`tests/guests/*`, `plugins/*`), built
/// from source for wasm32-wasip2 by this crate's build script.
pub fn guest(crate_name: &str) -> PathBuf {
    let path = guest_dir().join(format!("{}.wasm", crate_name.replace('-', "_")));
    assert!(
        path.is_file(),
        "guest component missing: {}",
        path.display()
    );
    path
}

/// Where the build script put the guest components.
pub fn guest_dir() -> PathBuf {
    PathBuf::from(env!("GUEST_DIR"))
}

/// The `triggerfish` command line, as built by this crate (the same entry
/// point as the real binary).
pub fn triggerfish_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_triggerfish-under-test"))
}

/// A fresh temporary directory, removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("triggerfish-test-")
        .tempdir()
        .expect("temp dir")
}

/// TOML string literal.
pub fn lit(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// A three-contact CRM under `dir/data/crm.csv` (two in France) and the
/// `[insights]` section that reads it, with the segment `france` and its
/// threshold of 2: the first refresh raises one crossing.
pub fn france_workspace(dir: &Path) -> &'static str {
    std::fs::create_dir_all(dir.join("data")).expect("data dir");
    std::fs::write(
        dir.join("data/crm.csv"),
        "ContactId,Email,Country\n1,a@example.com,FR\n2,b@example.com,FR\n3,c@example.com,DE\n",
    )
    .expect("crm.csv");
    r#"
[insights]
retries = 0
[[insights.sources]]
name = "crm"
path = "data/crm.csv"
key = "ContactId"
[insights.sources.map]
Email = "Email"
Country = "Country"
[[insights.unification.rules]]
name = "email"
fields = ["Email"]
[[insights.segments]]
name = "france"
filter = "Country eq 'FR'"
thresholds = [{ value = 2 }]
"#
}

/// A path as `&str`, for command lines.
pub fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The compile cache the tests share, so each component compiles once a run.
pub fn shared_cache() -> PathBuf {
    root().join("target/tf-test-cache")
}

/// `DIR/triggerfish.toml` with plugin `teams-alert` (`component`) on
/// refresh failures, posting to channel `ops` at `webhook_url`.
pub fn teams_flow_config(dir: &Path, webhook_url: &str, component: &Path) -> PathBuf {
    let body = format!(
        r#"
[teams.channels.ops]
webhook_url = "{webhook_url}"

[[plugins]]
name = "teams-alert"
component = {component}
triggers = ["data-source-refresh-failed"]
[plugins.grants]
teams = ["ops"]
[plugins.config]
channel = "ops"
"#,
        component = lit(component),
    );
    write_flow_config(dir, &body)
}

/// `DIR/triggerfish.toml`: state in `DIR/state`, the shared compile cache,
/// then `body`.
fn write_flow_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("triggerfish.toml");
    let text = format!(
        "[host]\nstate_dir = {}\ncache_dir = {}\n{body}",
        lit(&dir.join("state")),
        lit(&shared_cache()),
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// `DIR/triggerfish.toml` with plugin `segment-mail` (`component`) on
/// segment crossings, emailing group `data-owners` (ann@, bob@example.com)
/// through the SMTP server on `smtp_port`.
pub fn email_flow_config(dir: &Path, smtp_port: u16, component: &Path) -> PathBuf {
    let body = format!(
        r#"
[email]
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
tls = "none"
from = "Triggerfish <triggerfish@example.com>"

[email.groups]
data-owners = ["ann@example.com", "bob@example.com"]

[[plugins]]
name = "segment-mail"
component = {component}
triggers = ["segment-threshold-crossed"]
[plugins.grants]
email_groups = ["data-owners"]
"#,
        component = lit(component),
    );
    write_flow_config(dir, &body)
}

/// A real SMTP server (aiosmtpd) on loopback, writing what it receives.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// One message received by [`SmtpServer`].
#[derive(Debug, serde::Deserialize)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub data: String,
}

impl SmtpServer {
    /// Start it; fails when python3 or aiosmtpd is missing.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Start it requiring AUTH with `user:password`, when given.
    pub fn start_with(auth: Option<&str>) -> Self {
        let dir = tempdir();
        let script = root().join("tests/support/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(dir.path())
            .envs(auth.map(|a| ("SMTP_SINK_AUTH", a)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start python3 for the SMTP server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read SMTP server banner");
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                panic!("SMTP server did not start (is aiosmtpd installed?): {line:?}")
            });
        Self { child, port, dir }
    }

    /// Wait until `n` messages arrived (up to 10 s) and return them.
    pub fn wait_for(&self, n: usize) -> Vec<Received> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
                .expect("read sink dir")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            if files.len() >= n || Instant::now() > until {
                files.sort();
                return files
                    .iter()
                    .map(|f| {
                        serde_json::from_str(&std::fs::read_to_string(f).expect("read"))
                            .expect("json")
                    })
                    .collect();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request the Teams stand-in received.
#[derive(Debug, Clone)]
pub struct TeamsRequest {
    pub path: String,
    pub content_type: String,
    pub body: serde_json::Value,
}

/// A loopback HTTP server that answers like Teams webhooks do:
/// - `/workflows`: 202 (Power Automate Workflows);
/// - `/legacy`: 200 `1` (legacy incoming webhook);
/// - `/legacy-error`: 200 with an error text (how the legacy connector hides failures);
/// - `/throttled-once`: 429 with `Retry-After: 0` the first time, then 202;
/// - `/down`: 503 always;
/// - `/fails/N`: 503 for the first N requests, then 202;
/// - `/switch`: 503 while [`TeamsStub::down`] is set, else 202;
/// - `/echo/…`: 400 echoing the method, path and query (as some endpoints do);
/// - `/slow`: 202 after 3 s.
pub struct TeamsStub {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<TeamsRequest>>>,
    /// While true, `/switch` answers 503.
    pub down: Arc<std::sync::atomic::AtomicBool>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TeamsStub {
    /// Start on 127.0.0.1 with an ephemeral port.
    pub fn start() -> Self {
        use axum::body::Bytes;
        use axum::extract::State;
        use axum::http::{HeaderMap, StatusCode, Uri};
        use axum::response::IntoResponse;

        #[derive(Clone)]
        struct St {
            requests: Arc<Mutex<Vec<TeamsRequest>>>,
            /// Requests so far per path: counting them in `requests` made
            /// each request cost all those before it (20,000 in the
            /// cluster test).
            per_path: Arc<Mutex<HashMap<String, usize>>>,
            down: Arc<std::sync::atomic::AtomicBool>,
        }

        async fn handle(
            State(st): State<St>,
            uri: Uri,
            headers: HeaderMap,
            body: Bytes,
        ) -> axum::response::Response {
            let path = uri.path().to_owned();
            let body_json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            let seen_before = {
                // Counted and recorded under one lock: the two agree.
                let mut r = st.requests.lock().unwrap();
                let mut per_path = st.per_path.lock().unwrap();
                let n = per_path.entry(path.clone()).or_insert(0);
                *n += 1;
                r.push(TeamsRequest {
                    path: path.clone(),
                    content_type: headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned(),
                    body: body_json,
                });
                *n - 1
            };
            match path.as_str() {
                "/workflows" => StatusCode::ACCEPTED.into_response(),
                "/legacy" => (StatusCode::OK, "1").into_response(),
                "/legacy-error" => (
                    StatusCode::OK,
                    "Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0,server=msgapi-production-eus-azsc2-4-170,cv=deadbeef.0",
                )
                    .into_response(),
                "/throttled-once" if seen_before == 0 => {
                    (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0")], "slow down").into_response()
                }
                "/throttled-once" => StatusCode::ACCEPTED.into_response(),
                "/down" => (StatusCode::SERVICE_UNAVAILABLE, "maintenance").into_response(),
                "/switch" if st.down.load(std::sync::atomic::Ordering::SeqCst) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "maintenance").into_response()
                }
                "/switch" => StatusCode::ACCEPTED.into_response(),
                p if p.starts_with("/fails/") => {
                    let n: usize = p["/fails/".len()..].parse().unwrap_or(0);
                    if seen_before < n {
                        (StatusCode::SERVICE_UNAVAILABLE, "warming up").into_response()
                    } else {
                        StatusCode::ACCEPTED.into_response()
                    }
                }
                "/slow" => {
                    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                    StatusCode::ACCEPTED.into_response()
                }
                p if p.starts_with("/echo/") => (
                    StatusCode::BAD_REQUEST,
                    format!("cannot POST {uri}: unknown flow {path}"),
                )
                    .into_response(),
                _ => StatusCode::NOT_FOUND.into_response(),
            }
        }

        let requests = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let st = St {
            requests: requests.clone(),
            per_path: Arc::default(),
            down: down.clone(),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new().fallback(handle).with_state(st);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv().expect("teams stub address");
        Self {
            addr,
            requests,
            down,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests received so far.
    pub fn received(&self) -> Vec<TeamsRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TeamsStub {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Output of one CLI run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Assert a zero exit, showing both streams when not.
    pub fn assert_ok(&self, what: &str) {
        assert_eq!(
            self.code, 0,
            "{what}:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
    }

    /// stdout parsed as the `--json` outcome.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Run the `triggerfish` binary.
pub fn triggerfish(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let out = Command::new(triggerfish_bin())
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run triggerfish");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `triggerfish run` as a child process, with its API address.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub stdout: Arc<Mutex<String>>,
}

impl Daemon {
    /// Start it on `config` (which must set `[api] listen = "127.0.0.1:0"`)
    /// and wait for its API address.
    pub fn start(config: &Path, envs: &[(&str, &str)]) -> Self {
        let mut child = Command::new(triggerfish_bin())
            .args(["run", "--config", config.to_str().unwrap()])
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start triggerfish run");
        let stdout = child.stdout.take().unwrap();
        let text = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = text.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.strip_prefix("api listening on http://") {
                    let _ = tx.send(a.parse::<SocketAddr>().unwrap());
                }
                let mut t = sink.lock().unwrap();
                t.push_str(&line);
                t.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the daemon printed its API address");
        Self {
            child,
            addr,
            stdout: text,
        }
    }

    /// `http://ADDR/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for it to exit; returns its exit code.
    pub fn stop(mut self) -> i32 {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Daemon {
    /// A failed test must not leave a daemon behind (it would hold the
    /// test runner's output open).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A real OCI registry (Debian's `docker-registry`) on loopback, storing
/// under a temporary folder the test may tamper with.
pub struct Registry {
    child: Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
}

impl Registry {
    /// Start it; fails when `docker-registry` is not installed.
    pub fn start() -> Self {
        let dir = tempdir();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let addr = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                    dir.path().join("data").display()
                ),
            )
            .expect("write registry config");
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("cannot start docker-registry (apt-get install docker-registry)");
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken meanwhile: try another
                }
                if std::net::TcpStream::connect(&addr).is_ok() {
                    return Self { child, addr, dir };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not start on loopback");
    }

    /// `oci://ADDR/REPO:TAG`.
    pub fn reference(&self, repo_and_tag: &str) -> String {
        format!("oci://{}/{repo_and_tag}", self.addr)
    }

    /// The stored blob of a digest (`sha256:…`), to tamper with.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copy a plugin folder (without build outputs) into `to`; returns the copy.
pub fn copy_plugin(from: &Path, to: &Path) -> PathBuf {
    let dest = to.join(from.file_name().expect("folder name"));
    copy_tree(from, &dest);
    dest
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let name = entry.file_name();
        if ["build", "dist", "target", "node_modules", "__pycache__"]
            .iter()
            .any(|skip| name == *skip)
        {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(&name));
        } else {
            std::fs::copy(&path, to.join(&name)).expect("copy file");
        }
    }
}

/// `triggerfish plugin build DIR`, asserted to succeed; the component path.
pub fn build_plugin(dir: &Path, envs: &[(&str, &str)]) -> PathBuf {
    let run = triggerfish(
        &["plugin", "build", dir.to_str().expect("utf-8 path")],
        envs,
    );
    assert_eq!(
        run.code,
        0,
        "plugin build {}:\n{}\n{}",
        dir.display(),
        run.stdout,
        run.stderr
    );
    let path = run
        .stdout
        .strip_prefix("built ")
        .and_then(|s| s.split(" (").next())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no component path in: {}", run.stdout));
    assert!(path.is_file(), "{}", path.display());
    path
}

/// A real `nats-server` with JetStream on loopback, its store in a temp
/// dir. Writes are synced on every write where the server supports
/// `sync_interval: always` (2.10 and later); 2.9 syncs every two minutes,
/// so [`NatsServer::start`] says which it got.
pub struct NatsServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Whether the server took `sync_interval: always`.
    pub sync_always: bool,
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl NatsServer {
    /// Start one; panics (a failure on CI) when `nats-server` is missing.
    pub fn start() -> Self {
        let mut s = Self {
            port: free_port(),
            dir: tempdir(),
            child: None,
            sync_always: true,
        };
        if !s.launch() {
            s.sync_always = false;
            assert!(
                s.launch(),
                "nats-server did not start (see its output above)"
            );
        }
        eprintln!(
            "nats-server on 127.0.0.1:{} (JetStream fsync: {})",
            s.port,
            if s.sync_always {
                "every write"
            } else {
                "every 2 minutes: this server version has no sync_interval"
            }
        );
        s
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) -> bool {
        let conf = self.dir.path().join("nats.conf");
        let store = self.dir.path().join("jetstream");
        let sync = if self.sync_always {
            ", sync_interval: always"
        } else {
            ""
        };
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:{}\njetstream {{ store_dir: {:?}{sync} }}\n",
                self.port,
                store.display().to_string()
            ),
        )
        .unwrap();
        let mut child = Command::new("nats-server")
            .args(["-c", conf.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nats-server is installed (scripts/test.sh installs it)");
        let give_up = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                let mut err = String::new();
                use std::io::Read as _;
                let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
                eprintln!("nats-server exited: {err}");
                return false;
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < give_up,
                "nats-server did not listen in 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Drain its log so it never blocks on a full pipe.
        if let Some(err) = child.stderr.take() {
            std::thread::spawn(move || for _ in BufReader::new(err).lines() {});
        }
        self.child = Some(child);
        true
    }

    /// Stop it (SIGTERM, as an operator's restart does) and start it again
    /// on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        assert!(self.launch(), "nats-server restarts");
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
