//! The web console in a real headless Chromium, driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`) through fantoccini: the daemon
//! runs the demo workspace with both example plugins, a loopback Teams
//! stand-in and a real SMTP server that requires a password. Screenshots go
//! to `target/test-output/console/`.

use crate::support;

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::Value;
use support::{guest, lit, root, shared_cache, tempdir, Daemon, SmtpServer, TeamsStub};

const TOKEN: &str = "console-token-5b2e0c";
const WEBHOOK_SECRET: &str = "whk-secret-7d1f3a";
const SMTP_USER: &str = "relay-user";
const SMTP_PASSWORD: &str = "smtp-secret-91c4e8";
/// Longest wait for anything in the browser or the daemon.
const PATIENCE: Duration = Duration::from_secs(60);

/// The demo's `[insights]` part, as written in `examples/demo/triggerfish.toml`.
fn demo_insights() -> String {
    let text = std::fs::read_to_string(root().join("examples/demo/triggerfish.toml")).unwrap();
    let start = text.find("[insights]\n").expect("the demo has [insights]");
    let end = text.find("[[plugins]]").expect("the demo has plugins");
    let part = &text[start..end];
    // Up to the plugins' leading comment.
    part[..part.rfind("\n#").unwrap_or(part.len())].to_owned()
}

fn write_config(dir: &Path, teams: &TeamsStub, smtp: &SmtpServer) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for f in std::fs::read_dir(root().join("examples/demo/data")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), data.join(f.file_name())).unwrap();
    }
    let text = format!(
        r#"[host]
cache_dir = {cache}
state_dir = "state"

[api]
listen = "0.0.0.0:0"
token_env = "TF_CONSOLE_TOKEN"

[teams.channels.ops]
webhook_url = "{webhook}?sig={WEBHOOK_SECRET}"

[email]
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
tls = "none"
username_env = "TF_SMTP_USER"
password_env = "TF_SMTP_PASSWORD"
from = "Triggerfish <triggerfish@example.com>"

[email.groups]
data-owners = ["ann.owner@example.com", "bob.steward@example.com"]

{insights}
[[plugins]]
name = "teams-on-refresh-failure"
component = {teams_component}
triggers = ["data-source-refresh-failed"]
[plugins.grants]
teams = ["ops"]
[plugins.retry]
attempts = 1
first_wait = "100ms"
max_wait = "100ms"
[plugins.config]
channel = "ops"

[[plugins]]
name = "email-segment-owners"
component = {email_component}
triggers = ["segment-threshold-crossed"]
[plugins.grants]
email_groups = ["data-owners"]
[plugins.config]
group = "data-owners"
"#,
        cache = lit(&shared_cache()),
        webhook = teams.url("/switch"),
        smtp_port = smtp.port,
        insights = demo_insights(),
        teams_component = lit(&guest("teams-on-refresh-failure")),
        email_component = lit(&guest("email-segment-owners")),
    );
    let path = dir.join("triggerfish.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// chromedriver on a loopback port, killed on drop.
struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = output_dir().join("chromedriver.log");
        // Its own process group, so that a failed test takes Chromium down
        // with it; no pipe of ours, so nothing left behind holds the test's
        // output open.
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start chromedriver: install Debian's chromium and chromium-driver (scripts/test.sh does)");
        let until = Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < until,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group of our own child.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Chromedriver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--hide-scrollbars",
                     format!("--user-data-dir={}", profile.display())],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session in headless Chromium")
}

fn output_dir() -> PathBuf {
    let dir = root().join("target/test-output/console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(output_dir().join(name), png).unwrap();
}

/// The text of the first element matching `css`, once there is one. The
/// live region is swapped whenever the journal changes, so an element found
/// may go stale before it is read: then it is looked up again.
async fn text_of(c: &Client, css: &str) -> String {
    let give_up = Instant::now() + PATIENCE;
    loop {
        let found = c
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await;
        let last = match found {
            Ok(e) => match e.text().await {
                Ok(t) => return t,
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < give_up,
            "no element '{css}' on the page: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Click what `locator` finds, looking it up again if it went stale.
/// Wait until the text of `css` is `want`: a click that navigates returns
/// before the next page replaces the current one.
async fn text_becomes(c: &Client, css: &str, want: &str) {
    let give_up = Instant::now() + PATIENCE;
    loop {
        let text = text_of(c, css).await;
        if text == want {
            return;
        }
        assert!(
            Instant::now() < give_up,
            "'{css}' reads {text:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click(c: &Client, locator: Locator<'_>) {
    let give_up = Instant::now() + PATIENCE;
    loop {
        let last = match c.find(locator).await {
            Ok(e) => match e.click().await {
                Ok(()) => return,
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        assert!(Instant::now() < give_up, "cannot click {locator:?}: {last}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until `css` matches an element (the page updates live).
async fn appears(c: &Client, css: &str) {
    text_of(c, css).await;
}

async fn api(http: &reqwest::Client, method: reqwest::Method, url: &str) -> (u16, String) {
    let res = http
        .request(method, url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// Poll `GET url` (JSON, with the token) until `done` holds.
async fn until(http: &reqwest::Client, url: &str, done: impl Fn(&Value) -> bool) -> Value {
    let give_up = Instant::now() + PATIENCE;
    loop {
        let (_, body) = api(http, reqwest::Method::GET, url).await;
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < give_up, "gave up waiting on {url}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [WEBHOOK_SECRET, SMTP_PASSWORD, TOKEN] {
        assert!(!text.contains(secret), "{what} shows a secret ({secret})");
    }
}

#[test]
fn the_console_shows_the_demo_in_a_real_browser() {
    let teams = TeamsStub::start();
    teams.down.store(true, Ordering::SeqCst);
    let smtp = SmtpServer::start_with(Some(&format!("{SMTP_USER}:{SMTP_PASSWORD}")));
    let dir = tempdir();
    let config = write_config(dir.path(), &teams, &smtp);
    let d = Daemon::start(
        &config,
        &[
            ("TF_CONSOLE_TOKEN", TOKEN),
            ("TF_SMTP_USER", SMTP_USER),
            ("TF_SMTP_PASSWORD", SMTP_PASSWORD),
        ],
    );
    // It listens beyond loopback; the tests only ever talk to 127.0.0.1.
    let base = format!("http://127.0.0.1:{}", d.addr.port());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();

        // Off loopback, nothing without the token but the sign-in page and assets.
        for path in ["/", "/runs", "/plugins", "/insights", "/entities/Customer", "/live"] {
            let res = http.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(res.status().as_u16(), 401, "{path} without the token");
            let body = res.text().await.unwrap();
            assert!(body.contains("Sign in"), "{path}: {body}");
        }
        let res = http.get(format!("{base}/v1/runs")).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 401);
        let res = http
            .post(format!("{base}/login"))
            .form(&[("token", "not-the-token"), ("next", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 401);
        assert!(res.text().await.unwrap().contains("Wrong token."));
        // A cookie session may not post from another origin.
        let res = http
            .post(format!("{base}/login"))
            .form(&[("token", TOKEN), ("next", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303);
        let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        let session = cookie.split(';').next().unwrap().to_owned();
        let res = http
            .post(format!("{base}/runs/1/replay"))
            .header("cookie", &session)
            .header("origin", "http://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 403);

        // The first refresh crosses three segment thresholds: three emails,
        // through the relay that wants the password.
        until(&http, &format!("{base}/v1/runs?plugin=email-segment-owners&status=succeeded"), |v| {
            v["runs"].as_array().is_some_and(|r| r.len() == 3)
        })
        .await;
        assert_eq!(smtp.wait_for(3).len(), 3);

        let driver = Chromedriver::start();
        let profile = tempdir();
        let c = browser(&driver, profile.path()).await;

        // Sign in: the page asked for is shown after.
        c.goto(&format!("{base}/")).await.unwrap();
        assert_eq!(text_of(&c, "h1").await, "Sign in");
        c.find(Locator::Css("#token")).await.unwrap().send_keys(TOKEN).await.unwrap();
        click(&c, Locator::Css("#sign-in")).await;
        text_becomes(&c, "h1", "Overview").await;

        // The overview shows the demo's refresh, stage by stage.
        let first = text_of(&c, "#refreshes tr[data-refresh='1']").await;
        for part in ["full", "source:crm-contacts", "unification", "segments", "measures", "publish", "22 rows"] {
            assert!(first.contains(part), "refresh row lacks '{part}': {first}");
        }
        appears(&c, "canvas#events-chart").await;
        assert_eq!(text_of(&c, "[data-tile='dead-letters'] .n").await, "0");
        screenshot(&c, "overview.png").await;

        // A half-written export: the source fails, the Teams post fails
        // (the channel is down) and the run is dead-lettered. The overview
        // follows without a reload.
        std::fs::write(
            dir.path().join("data/loyalty-members.json"),
            "[\n  {\"MemberId\": \"L900\", \"GivenName\": \"Half",
        )
        .unwrap();
        click(&c, Locator::Css("#refresh-now")).await;
        assert!(text_of(&c, ".flash").await.contains("Queued: full refresh"));
        let dead = until(&http, &format!("{base}/v1/runs?status=dead"), |v| {
            v["runs"].as_array().is_some_and(|r| r.len() == 1)
        })
        .await;
        let run = dead["runs"][0]["id"].as_i64().unwrap();
        appears(&c, "#refreshes tr[data-refresh='2']").await;
        let second = text_of(&c, "#refreshes tr[data-refresh='2']").await;
        assert!(second.contains("failed") && second.contains("skipped"), "{second}");
        assert!(second.contains("source:loyalty-members: ") && second.contains("loyalty-members.json: not valid JSON"), "{second}");
        let give_up = Instant::now() + PATIENCE;
        while text_of(&c, "[data-tile='dead-letters'] .n").await != "1" {
            assert!(Instant::now() < give_up, "the dead letter never showed on the overview");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let updates = c
            .execute("return document.body.dataset.liveUpdates || '0';", vec![])
            .await
            .unwrap();
        assert_ne!(updates, Value::from("0"), "the overview was never updated live");
        screenshot(&c, "overview-after-failure.png").await;

        // Runs, filtered to dead letters through the form, then the run.
        click(&c, Locator::LinkText("Runs")).await;
        appears(&c, "form.filters").await;
        c.find(Locator::Css("select[name='status']"))
            .await
            .unwrap()
            .select_by_value("dead")
            .await
            .unwrap();
        click(&c, Locator::Css("form.filters button")).await;
        // The unfiltered page lists the dead run too: wait for the filtered
        // one (the form's GET), then count its rows.
        let give_up = Instant::now() + PATIENCE;
        loop {
            let url = c.current_url().await.map(|u| u.to_string()).unwrap_or_default();
            let rows = match c.find_all(Locator::Css("table.runs tbody tr")).await {
                Ok(rows) => rows.len(),
                Err(_) => 0,
            };
            if url.contains("status=dead") && rows == 1 {
                break;
            }
            assert!(
                Instant::now() < give_up,
                "only the dead run is listed: {rows} rows at {url}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        appears(&c, &format!("tr[data-run='{run}'][data-status='dead']")).await;
        click(&c, Locator::LinkText(&format!("#{run}"))).await;
        text_becomes(&c, "h1", &format!("Run #{run}")).await;
        assert_eq!(text_of(&c, "#run-status").await, "dead");
        let attempts = text_of(&c, "#attempts").await;
        assert!(attempts.contains("failed, dead-lettered"), "{attempts}");
        assert!(attempts.contains("teams channel 'ops' answered 503: maintenance"), "{attempts}");
        let log = text_of(&c, "#log").await;
        assert!(
            log.contains("source 'loyalty-members' failed (permanent): posting a card to channel 'ops'"),
            "{log}"
        );
        let event = text_of(&c, "#event").await;
        assert!(event.contains("loyalty-members") && event.contains("not valid JSON"), "{event}");
        screenshot(&c, "run-dead.png").await;

        // Replay from the page once the channel is back: a new run of the
        // same event succeeds and posts the card; the dead run is retired
        // and points at it.
        teams.down.store(false, Ordering::SeqCst);
        click(&c, Locator::Css("#replay")).await;
        appears(&c, ".flash").await;
        let title = text_of(&c, "h1").await;
        let new_run: i64 = title
            .strip_prefix("Run #")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("the replay's page: {title}"));
        assert_ne!(new_run, run, "a replay is a new run");
        assert_eq!(text_of(&c, "#replay-of").await, format!("run #{run}"));
        appears(&c, "#attempts tr[data-outcome='succeeded']").await;
        assert_eq!(text_of(&c, "#run-status").await, "succeeded");
        assert!(text_of(&c, "#sent").await.contains("posted to channel 'ops'"));
        screenshot(&c, "run-replayed.png").await;
        assert!(teams
            .received()
            .iter()
            .any(|r| r.path == "/switch" && r.body.to_string().contains("loyalty-members")));
        click(&c, Locator::Css("#replay-of")).await;
        text_becomes(&c, "h1", &format!("Run #{run}")).await;
        assert_eq!(text_of(&c, "#run-status").await, "replayed");
        assert_eq!(text_of(&c, "#replayed-by").await, format!("run #{new_run}"));
        let attempts = text_of(&c, "#attempts").await;
        assert!(attempts.contains("failed, dead-lettered") && !attempts.contains("succeeded"), "{attempts}");
        assert!(text_of(&c, "main").await.contains("Nothing was sent."), "the dead run sent nothing");
        screenshot(&c, "run.png").await;

        // The measure chart draws its threshold and marks the crossing.
        c.goto(&format!("{base}/insights")).await.unwrap();
        appears(&c, "canvas#measure-total-revenue").await;
        // Charts are drawn after load (and again after a live update).
        let give_up = Instant::now() + PATIENCE;
        let datasets = loop {
            let got = c
                .execute(
                    "const el = document.getElementById('measure-total-revenue');
                     const chart = el && window.Chart && Chart.getChart(el);
                     if (!chart) return null;
                     return chart.data.datasets.map(d => ({label: d.label, kind: d.triggerfish || 'value', data: d.data}));",
                    vec![],
                )
                .await
                .unwrap();
            if !got.is_null() {
                break got;
            }
            assert!(Instant::now() < give_up, "the measure chart was never drawn");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let sets = datasets.as_array().unwrap();
        let threshold = sets.iter().find(|d| d["kind"] == "threshold").expect("a threshold line");
        assert_eq!(threshold["label"], "threshold 2000 (up)");
        assert!(threshold["data"].as_array().unwrap().iter().all(|v| v.as_f64() == Some(2000.0)));
        let value = sets.iter().find(|d| d["kind"] == "value").unwrap();
        assert_eq!(value["data"][0].as_f64(), Some(0.0), "the chart starts from 0");
        assert_eq!(value["data"][1].as_f64(), Some(2246.37));
        let crossings = sets.iter().find(|d| d["kind"] == "crossings").expect("crossings marked");
        assert_eq!(crossings["data"][1].as_f64(), Some(2246.37));
        let sources = text_of(&c, "#sources").await;
        assert!(sources.contains("loyalty-members") && sources.contains("failed"), "{sources}");
        screenshot(&c, "insights.png").await;

        // Plugins: grants, digest and record.
        c.goto(&format!("{base}/plugins")).await.unwrap();
        let plugin = text_of(&c, "[data-plugin='teams-on-refresh-failure']").await;
        for part in ["data-source-refresh-failed", "sha256:", "ops", "success rate", "p99 duration"] {
            assert!(plugin.contains(part), "plugin card lacks '{part}': {plugin}");
        }
        assert_eq!(
            text_of(&c, "[data-plugin='email-segment-owners'] [data-stat='success-rate']").await,
            "100.0 %"
        );
        screenshot(&c, "plugins.png").await;

        // Entities through the plugins' query engine, with paging and errors.
        c.goto(&format!("{base}/entities/Customer?filter=Country%20eq%20%27FR%27&orderby=LastName&top=5"))
            .await
            .unwrap();
        appears(&c, "#rows").await;
        assert_eq!(c.find_all(Locator::Css("#rows tbody tr")).await.unwrap().len(), 5);
        click(&c, Locator::Css("a.next")).await;
        appears(&c, "#rows").await;
        assert_eq!(c.find_all(Locator::Css("#rows tbody tr")).await.unwrap().len(), 5);
        c.goto(&format!("{base}/entities/Customer?filter=Country%20eqq%20%27FR%27")).await.unwrap();
        let error = text_of(&c, "div.error").await;
        assert!(error.contains("$filter"), "{error}");
        screenshot(&c, "entities-error.png").await;

        // No secret anywhere the console serves, whatever the page.
        let mut pages = vec![
            "/".to_owned(), "/runs".into(), "/plugins".into(), "/insights".into(), "/entities".into(),
            "/login".into(), "/assets/console.js".into(), "/assets/console.css".into(),
        ];
        let all = until(&http, &format!("{base}/v1/runs"), |_| true).await;
        for r in all["runs"].as_array().unwrap() {
            pages.push(format!("/runs/{}", r["id"]));
        }
        for e in ["Customer", "CustomerSourceLink", "SegmentMember", "Measure", "CrmContacts"] {
            pages.push(format!("/entities/{e}"));
        }
        for p in &pages {
            let (status, body) = api(&http, reqwest::Method::GET, &format!("{base}{p}")).await;
            assert_eq!(status, 200, "{p}: {body}");
            assert_no_secret(p, &body);
        }
        assert_no_secret("the browser's page", &c.source().await.unwrap());

        // Signing out ends the session: the next page asks for the token again.
        click(&c, Locator::Css("#sign-out")).await;
        text_becomes(&c, "h1", "Sign in").await;
        c.goto(&format!("{base}/runs")).await.unwrap();
        assert_eq!(text_of(&c, "h1").await, "Sign in");

        // Guessing the token through the sign-in page is paced.
        let mut statuses = Vec::new();
        for _ in 0..12 {
            let res = http
                .post(format!("{base}/login"))
                .form(&[("token", "guess"), ("next", "/")])
                .send()
                .await
                .unwrap();
            statuses.push(res.status().as_u16());
        }
        assert!(statuses.contains(&429), "{statuses:?}");
        let res = http
            .post(format!("{base}/login"))
            .form(&[("token", TOKEN), ("next", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 429, "even the right token waits its turn");
        assert!(res.text().await.unwrap().contains("Too many sign-in attempts"));
        let (status, body) = api(&http, reqwest::Method::GET, &format!("{base}/entities/Nope")).await;
        assert_eq!(status, 404);
        assert!(body.contains("entity &#39;Nope&#39;") || body.contains("entity 'Nope'"), "{body}");
        let (status, body) = api(&http, reqwest::Method::GET, &format!("{base}/runs?trigger=nope")).await;
        assert_eq!(status, 400);
        assert!(body.contains("unknown trigger"), "{body}");
        c.close().await.unwrap();
    });
    assert_eq!(d.stop(), 0, "the daemon stops cleanly with a console open");
}
