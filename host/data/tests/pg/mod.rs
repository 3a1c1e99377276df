//! A real PostgreSQL server on loopback for tests: `initdb` into a temporary
//! folder, `postgres` on a free port, stopped and removed on drop.
//!
//! The binaries are Debian's (`apt-get install postgresql`), found under
//! `/usr/lib/postgresql/*/bin` (the newest) or in `$PG_BIN`. Without them
//! the tests fail, saying how to install them; outside CI they may be
//! skipped on purpose with `TRIGGERFISH_SKIP_POSTGRES=1`, never silently.
//! `initdb` and `postgres` refuse to run as root: as root they run as the
//! `postgres` user (`runuser`), in a folder it owns.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The superuser's password (password authentication is on, so tests can
/// check that a password never shows in a message).
pub const PASSWORD: &str = "tf-pg-Secret-7319";

/// The role that logs in with a client certificate (see
/// [`Postgres::start_tls`]).
pub const CERT_USER: &str = "certuser";

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running server.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The user the server runs as when we are root.
    run_as: Option<String>,
    child: Child,
    pub port: u16,
}

fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").is_file().then_some(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn id_of(user: &str, flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, user])
        .output()
        .expect("run id");
    assert!(
        out.status.success(),
        "as root the server runs as the '{user}' user, which does not exist (Debian's postgresql package creates it)"
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a numeric id")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port nothing listens on (bound and released: a brief race at worst).
pub fn unused_port() -> u16 {
    free_port()
}

impl Postgres {
    /// Start a server, or `None` when the tests are skipped on purpose.
    pub fn start() -> Option<Self> {
        Self::start_with(None)
    }

    /// [`Postgres::start`] with TLS on, offering the certificate `cert_pem`
    /// (its key `key_pem`); clients may still connect without TLS. With
    /// `client_ca`, the role [`CERT_USER`] logs in over TLS only, with a
    /// certificate for its name from that authority.
    pub fn start_tls(cert_pem: &str, key_pem: &str, client_ca: Option<&str>) -> Option<Self> {
        Self::start_with(Some((cert_pem, key_pem, client_ca)))
    }

    fn start_with(tls: Option<(&str, &str, Option<&str>)>) -> Option<Self> {
        let Some(bin) = find_bin() else {
            let ci = std::env::var_os("CI").is_some();
            let skip = std::env::var_os("TRIGGERFISH_SKIP_POSTGRES").is_some();
            if skip && !ci {
                eprintln!("SKIPPED: no PostgreSQL binaries, and TRIGGERFISH_SKIP_POSTGRES is set");
                return None;
            }
            panic!(
                "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb, or $PG_BIN): \
                 install them (Debian: apt-get install postgresql; scripts/test.sh does){}",
                if ci {
                    ""
                } else {
                    ", or set TRIGGERFISH_SKIP_POSTGRES=1 to skip these tests"
                }
            );
        };
        let run_as = is_root().then(|| "postgres".to_owned());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), PASSWORD).unwrap();
        let mut owned = vec![dir.path().to_owned(), dir.path().join("pw")];
        let mut settings: Vec<String> = Vec::new();
        let mut client_ca_path = None;
        if let Some((cert, key, client_ca)) = tls {
            use std::os::unix::fs::PermissionsExt as _;
            let (crt_path, key_path) =
                (dir.path().join("server.crt"), dir.path().join("server.key"));
            std::fs::write(&crt_path, cert).unwrap();
            std::fs::write(&key_path, key).unwrap();
            // The server refuses a key others may read.
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
            settings.extend([
                "ssl=on".to_owned(),
                format!("ssl_cert_file={}", crt_path.display()),
                format!("ssl_key_file={}", key_path.display()),
            ]);
            owned.extend([crt_path, key_path]);
            if let Some(ca) = client_ca {
                let ca_path = dir.path().join("clients.crt");
                std::fs::write(&ca_path, ca).unwrap();
                settings.push(format!("ssl_ca_file={}", ca_path.display()));
                owned.push(ca_path.clone());
                client_ca_path = Some(ca_path);
            }
        }
        if let Some(user) = &run_as {
            let (uid, gid) = (id_of(user, "-u"), id_of(user, "-g"));
            for p in &owned {
                std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
            }
        }
        let data = dir.path().join("data");
        let out = command(&bin, run_as.as_deref(), "initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ])
            .arg(format!("--pwfile={}", dir.path().join("pw").display()))
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if client_ca_path.is_some() {
            // First match wins: this role must show a certificate.
            let hba = data.join("pg_hba.conf");
            let rest = std::fs::read_to_string(&hba).unwrap();
            std::fs::write(
                &hba,
                format!("hostssl all {CERT_USER} 127.0.0.1/32 cert\n{rest}"),
            )
            .unwrap();
        }
        // A port taken between choosing and binding: try another.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let log = dir.path().join(format!("server-{port}.log"));
            let log_file = std::fs::File::create(&log).unwrap();
            let mut child = command(&bin, run_as.as_deref(), "postgres")
                .arg("-D")
                .arg(&data)
                .arg("-k")
                .arg(dir.path())
                .args(["-p", &port.to_string()])
                .args([
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "shared_buffers=16MB",
                    "-c",
                    "max_connections=20",
                ])
                .args(settings.iter().flat_map(|s| ["-c", s.as_str()]))
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .spawn()
                .expect("start postgres");
            if wait_ready(&bin, &mut child, port) {
                return Some(Self {
                    dir,
                    bin,
                    run_as,
                    child,
                    port,
                });
            }
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
            stop(&bin, run_as.as_deref(), &data, &mut child);
        }
        panic!("postgres did not start: {last_log}");
    }

    /// A connection string for the superuser (`key=value` form).
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres password={PASSWORD} dbname=postgres",
            self.port
        )
    }

    /// Run SQL with `psql`, failing the test on any error.
    pub fn sql(&self, sql: &str) {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-c", sql])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql failed on {sql:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        stop(&self.bin, self.run_as.as_deref(), &data, &mut self.child);
    }
}

/// Wait until the server accepts connections; false when it exited.
fn wait_ready(bin: &Path, child: &mut Child, port: u16) -> bool {
    let started = Instant::now();
    while started.elapsed() < START_TIMEOUT {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Stop the server at once (`pg_ctl stop -m immediate`), killing it if that
/// fails, and reap it.
fn stop(bin: &Path, run_as: Option<&str>, data: &Path, child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let stopped = command(bin, run_as, "pg_ctl")
        .args(["stop", "-m", "immediate", "-w", "-t", "20", "-D"])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !stopped {
        let _ = child.kill();
    }
    let _ = child.wait();
}

fn command(bin: &Path, run_as: Option<&str>, program: &str) -> Command {
    match run_as {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(bin.join(program));
            c
        }
        None => Command::new(bin.join(program)),
    }
}
