//! Test fixture: misbehaves on purpose, as chosen by config `mode`.

use triggerfish_plugin_sdk::{config, email, entities, log, teams, Event, Plugin};

struct Misbehaving;

impl Plugin for Misbehaving {
    fn on_event(_event: Event) -> Result<(), String> {
        match config::get("mode").as_deref().unwrap_or("noop") {
            "noop" => Ok(()),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = core::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut kept: Vec<Vec<u8>> = Vec::new();
                for i in 0..4096u32 {
                    let mut chunk = vec![0u8; 1 << 20];
                    chunk[(i as usize * 7) % (1 << 20)] = 1;
                    kept.push(chunk);
                }
                Err(format!(
                    "allocated {} MiB without hitting a limit",
                    kept.len()
                ))
            }
            "trap" => panic!("deliberate trap"),
            "stdout" => {
                println!("hello from stdout");
                eprintln!("hello from stderr");
                Ok(())
            }
            "fail" => Err("deliberate failure".into()),
            "fields-flood" => {
                // Host-side resources outside the guest's memory cap: keep
                // creating wasi:http header maps, each as full as allowed.
                use wasip2::http::types::Fields;
                let value = vec![b'a'; 30 * 1024];
                let mut kept = Vec::new();
                loop {
                    let f = Fields::new();
                    let _ = f.append("x-flood", &value);
                    kept.push(f);
                    if kept.len() % 256 == 0 {
                        log::info(&format!("{} fields held", kept.len()));
                    }
                }
            }
            "hostile-text" => {
                // A log line that would forge a host log line and drive the
                // terminal, stdout with escapes, and a huge error string.
                log::info(
                    "fine\n2026-01-01T00:00:00Z ERROR triggerfish: forged\u{1b}]0;pwned\u{7}",
                );
                println!("\u{1b}[2Jcleared?");
                Err(format!("\u{1b}[31m{}", "e".repeat(1 << 20)))
            }
            "http-get" => http_get(&config::get_or("url", "http://127.0.0.1:9/")),
            "stack-overflow" => {
                fn deeper(n: u64, pad: &mut [u8; 1024]) -> u64 {
                    if n == u64::MAX {
                        return 0;
                    }
                    pad[(n % 1024) as usize] = n as u8;
                    let mut next = [0u8; 1024];
                    deeper(n + 1, &mut next) + u64::from(pad[0])
                }
                let mut pad = [0u8; 1024];
                Err(format!("returned {}", deeper(0, &mut pad)))
            }
            "log-flood" => {
                let line = "x".repeat(200);
                loop {
                    log::info(&line);
                }
            }
            "teams-flood" => {
                let channel = config::get_or("channel", "ops");
                let mut n = 0u64;
                loop {
                    n += 1;
                    if let Err(e) = teams::post_text(&channel, &format!("post {n}")) {
                        return Err(format!("post {n}: {}", e.describe()));
                    }
                }
            }
            "sleep" => {
                let ms: u64 = config::get_or("ms", "100")
                    .parse()
                    .map_err(|_| "ms is not a number")?;
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Ok(())
            }
            "flood-stdout" => {
                // Far past the host's 64 KiB capture cap; println! panics if
                // the host closes the pipe instead of truncating.
                let line = "x".repeat(1023);
                for _ in 0..256 {
                    println!("{line}");
                }
                log::info("still running after the flood");
                Ok(())
            }
            "sandbox" => sandbox(),
            // Two posts in order: with a sent ledger, a retried run that
            // failed on the second gets the first's earlier result back.
            "two-posts" => {
                for channel in ["first", "second"] {
                    teams::post_text(channel, &config::get_or("text", "hi"))
                        .map_err(|e| format!("posting to '{channel}': {}", e.describe()))?;
                }
                Ok(())
            }
            "teams" => teams::post_text(
                &config::get_or("channel", "ops"),
                &config::get_or("text", "hi"),
            )
            .map_err(|e| e.describe()),
            "email" => {
                let to = config::get_or("to", "data-owners");
                email::send(&email::Message {
                    to: to.split(',').map(|s| s.trim().to_owned()).collect(),
                    cc: Vec::new(),
                    subject: "probe".into(),
                    text: "probe".into(),
                    html: None,
                })
                .map_err(|e| e.describe())
            }
            "entities" => {
                let names = entities::list().map_err(|e| e.describe())?;
                log::info(&format!("entities: {}", names.join(",")));
                Ok(())
            }
            "entity-calls" => entity_calls(),
            "write" => write::create(
                &config::get_or("entity", "FollowUp"),
                &config::get_or("item", "{}"),
            ),
            "update" => write::update(
                &config::get_or("entity", "FollowUp"),
                &config::get_or("id", ""),
                &config::get_or("changes", "{}"),
            ),
            "write-burst" => write::burst(),
            "create-then-hang" => {
                write::create(
                    &config::get_or("entity", "FollowUp"),
                    &config::get_or("item", "{}"),
                )?;
                let mut n: u64 = 0;
                loop {
                    n = core::hint::black_box(n.wrapping_add(1));
                }
            }
            "partitions" => write::partitions(),
            "report" => write::reports(),
            other => Err(format!("unknown mode '{other}'")),
        }
    }
}

/// Make config `calls` get-items calls on config `entity`, logging each
/// outcome as `call N: ok` or `call N: rate-limited MS`.
fn entity_calls() -> Result<(), String> {
    let calls: u32 = config::get_or("calls", "1")
        .parse()
        .map_err(|_| "calls is not a number")?;
    let entity = config::get_or("entity", "Customer");
    let mut q = entities::query();
    q.top = Some(1);
    for n in 1..=calls {
        match entities::page(&entity, &q) {
            Ok(_) => log::info(&format!("call {n}: ok")),
            Err(triggerfish_plugin_sdk::Error::RateLimited(ms)) => {
                log::info(&format!("call {n}: rate-limited {ms}"))
            }
            Err(e) => return Err(format!("call {n}: {}", e.describe())),
        }
    }
    Ok(())
}

fn report(probe: &str, escaped: bool, detail: String, escapes: &mut Vec<String>) {
    if escaped {
        log::error(&format!("sandbox {probe}: ALLOWED ({detail})"));
        escapes.push(probe.to_owned());
    } else {
        log::info(&format!("sandbox {probe}: denied ({detail})"));
    }
}

fn sandbox() -> Result<(), String> {
    let mut escapes = Vec::new();
    match std::fs::read("/etc/passwd") {
        Ok(b) => report("fs-read", true, format!("{} bytes", b.len()), &mut escapes),
        Err(e) => report("fs-read", false, e.to_string(), &mut escapes),
    }
    for dir in ["/", "."] {
        match std::fs::read_dir(dir) {
            Ok(_) => report("read-dir", true, dir.to_owned(), &mut escapes),
            Err(e) => report("read-dir", false, format!("{dir}: {e}"), &mut escapes),
        }
    }
    let home = std::env::var("HOME");
    let vars = std::env::vars().count();
    let args = std::env::args().count();
    report(
        "env",
        home.is_ok() || vars > 0 || args > 0,
        format!("HOME={home:?}, {vars} variables, {args} arguments"),
        &mut escapes,
    );
    let addr = config::get_or("probe_addr", "127.0.0.1:9");
    match std::net::TcpStream::connect(addr.as_str()) {
        Ok(_) => report("tcp", true, addr, &mut escapes),
        Err(e) => report("tcp", false, format!("{addr}: {e}"), &mut escapes),
    }
    if escapes.is_empty() {
        Ok(())
    } else {
        Err(format!("sandbox escaped: {}", escapes.join(", ")))
    }
}

triggerfish_plugin_sdk::export_plugin!(Misbehaving);

/// GET `url` through wasi:http and log the status (or return the error).
fn http_get(url: &str) -> Result<(), String> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, OutgoingRequest, Scheme};
    let (scheme, rest) = url.split_once("://").ok_or("url needs a scheme")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let req = OutgoingRequest::new(Fields::new());
    let scheme = if scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    req.set_scheme(Some(&scheme)).map_err(|()| "bad scheme")?;
    req.set_authority(Some(authority))
        .map_err(|()| "bad authority")?;
    req.set_path_with_query(Some(path))
        .map_err(|()| "bad path")?;
    let response = outgoing_handler::handle(req, None).map_err(|e| format!("http: {e:?}"))?;
    response.subscribe().block();
    let got = response
        .get()
        .ok_or("no response")?
        .map_err(|()| "response taken twice")?
        .map_err(|e| format!("http: {e:?}"))?;
    log::info(&format!("http status {}", got.status()));
    Ok(())
}

/// Writes, partitions and status reports through the raw imports (no SDK
/// patience: a `rate-limited` answer comes back as it is).
mod write {
    use triggerfish_plugin_sdk::bindings::triggerfish::plugin::entities as wit;
    use triggerfish_plugin_sdk::bindings::triggerfish::plugin::status::{report, StatusLevel};
    use triggerfish_plugin_sdk::{config, log, Error};

    pub fn create(entity: &str, item: &str) -> Result<(), String> {
        let stored = wit::create_item(entity, item).map_err(|e| e.describe())?;
        log::info(&format!("created {stored}"));
        Ok(())
    }

    pub fn update(entity: &str, id: &str, changes: &str) -> Result<(), String> {
        let stored = wit::update_item(entity, id, changes).map_err(|e| e.describe())?;
        log::info(&format!("updated {stored}"));
        Ok(())
    }

    /// `count` creates of `burst-<i>`; the first refusal ends the run.
    pub fn burst() -> Result<(), String> {
        let entity = config::get_or("entity", "FollowUp");
        let count: u32 = config::get_or("count", "10").parse().map_err(|_| "count")?;
        for i in 0..count {
            let item = format!(r#"{{"Id":"burst-{i}","CustomerId":"c{i}"}}"#);
            if let Err(e) = wit::create_item(&entity, &item) {
                return Err(format!("after {i} writes: {}", e.describe()));
            }
        }
        Ok(())
    }

    /// Every partition of `entity`, paged with `$top` = `top`; the result
    /// is a status report whose details list them; an unknown partition
    /// must be `not-found`.
    pub fn partitions() -> Result<(), String> {
        let entity = config::get_or("entity", "Orders");
        let top: u32 = config::get_or("top", "2").parse().map_err(|_| "top")?;
        let parts = wit::list_partitions(&entity).map_err(|e| e.describe())?;
        let mut listed = Vec::new();
        for p in &parts {
            let mut query = wit::Query {
                filter: None,
                select: None,
                orderby: None,
                top: Some(top),
                skip: None,
            };
            let (mut paged, mut pages) = (0u64, 0u32);
            loop {
                let page = wit::get_partition_items(&entity, &p.id, &query)
                    .map_err(|e| format!("partition {}: {}", p.id, e.describe()))?;
                paged += page.items.len() as u64;
                pages += 1;
                match page.next_skip {
                    Some(s) => query.skip = Some(s),
                    None => break,
                }
            }
            listed.push(
                serde_json::json!({"id": p.id, "origin": p.origin, "rows": p.rows,
                "paged": paged, "pages": pages, "refreshed_at": p.refreshed_at}),
            );
        }
        let query = wit::Query {
            filter: None,
            select: None,
            orderby: None,
            top: None,
            skip: None,
        };
        match wit::get_partition_items(&entity, "no-such-partition", &query) {
            Err(Error::NotFound(m)) => log::info(&format!("unknown partition: {m}")),
            other => return Err(format!("an unknown partition gave {other:?}")),
        }
        let details = serde_json::Value::Array(listed).to_string();
        report(
            StatusLevel::Info,
            &format!("{} partitions", parts.len()),
            Some(&details),
        )
        .map_err(|e| e.describe())
    }

    /// A success report with details; bad details must be refused.
    pub fn reports() -> Result<(), String> {
        report(
            StatusLevel::Success,
            "exported 3 rows to the CRM",
            Some(r#"{"rows": 3}"#),
        )
        .map_err(|e| e.describe())?;
        match report(StatusLevel::Warning, "bad details", Some("{not json")) {
            Err(Error::InvalidArgument(m)) => {
                log::info(&format!("refused: {m}"));
                Ok(())
            }
            other => Err(format!("bad details gave {other:?}")),
        }
    }
}
