use time::OffsetDateTime;
use triggerfish_data::insights::normalize::Normalizer;

use super::output::{CrmRow, LoyaltyRow, WebRow};
use super::persons::{email_address, postcode, COUNTRIES};
use super::records::{datetime, vary_email, vary_name, vary_phone, vary_postcode};
use super::workspace::{nice_floor, up};
use super::*;
use triggerfish_data::insights::normalize::normalize;
use triggerfish_data::insights::workspace::InsightsSection;

fn run(rows: u64, seed: u64) -> (tempfile::TempDir, GenerateReport) {
    let dir = tempfile::tempdir().unwrap();
    let report = generate(
        &GenerateOptions {
            rows,
            seed,
            ..Default::default()
        },
        dir.path(),
    )
    .unwrap();
    (dir, report)
}

const FILES: [&str; 5] = [
    "crm-contacts.csv",
    "web-shop-orders.ndjson",
    "loyalty-members.csv",
    "truth.csv",
    "triggerfish.toml",
];

fn scores(table: &[(&str, &str)]) -> Scores {
    pair_scores(table.iter().map(|(c, p)| (c.to_string(), p.to_string())))
}

#[test]
fn same_seed_same_bytes() {
    let (a, _) = run(3_000, 42);
    let (b, _) = run(3_000, 42);
    let (c, _) = run(3_000, 43);
    for f in FILES {
        let fa = std::fs::read(a.path().join(f)).unwrap();
        let fb = std::fs::read(b.path().join(f)).unwrap();
        assert!(fa == fb, "{f} differs between two runs with one seed");
    }
    let crm = |d: &tempfile::TempDir| std::fs::read(d.path().join(FILES[0])).unwrap();
    assert_ne!(crm(&a), crm(&c), "another seed gives other data");
}

#[test]
fn row_counts_add_up() {
    for rows in [1, 2, 3, 7, 100, 2_345] {
        let (dir, report) = run(rows, 1);
        assert_eq!(report.rows(), rows);
        let names: Vec<&str> = report.sources.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            ["crm-contacts", "web-shop-orders", "loyalty-members"]
        );
        assert_eq!(report.sources[0].rows, rows * 40 / 100);
        assert_eq!(report.sources[2].rows, rows * 25 / 100);
        for s in &report.sources {
            let text = std::fs::read_to_string(&s.path).unwrap();
            let header = usize::from(s.name != "web-shop-orders");
            assert_eq!(
                text.lines().count() as u64,
                s.rows + header as u64,
                "{}",
                s.name
            );
        }
        assert!(report.persons >= 1 && report.persons <= rows);
        assert_eq!(report.expected.customers, report.persons);
        assert_eq!(report.expected.orders, report.sources[1].rows);
        assert!(dir.path().join("triggerfish.toml").is_file());
    }
}

/// (source, key) -> person, and every record read back from the files.
struct Readback {
    truth: HashMap<(String, String), String>,
    /// source, key, first, last, email, phone, postcode
    records: Vec<[String; 7]>,
}

fn read_back(dir: &Path) -> Readback {
    let mut truth = HashMap::new();
    let mut rdr = csv::Reader::from_path(dir.join("truth.csv")).unwrap();
    assert_eq!(rdr.headers().unwrap(), vec!["source", "key", "person"]);
    for rec in rdr.records() {
        let rec = rec.unwrap();
        let old = truth.insert((rec[0].to_owned(), rec[1].to_owned()), rec[2].to_owned());
        assert!(old.is_none(), "duplicate truth line {rec:?}");
    }
    let mut records = Vec::new();
    for (name, file, cols) in [
        ("crm-contacts", "crm-contacts.csv", [0, 1, 2, 3, 4, 5]),
        ("loyalty-members", "loyalty-members.csv", [0, 1, 2, 3, 4, 5]),
    ] {
        let mut rdr = csv::Reader::from_path(dir.join(file)).unwrap();
        for rec in rdr.records() {
            let rec = rec.unwrap();
            records.push(
                [name.to_owned()]
                    .into_iter()
                    .chain(cols.map(|i| rec[i].to_owned()))
                    .collect::<Vec<_>>()
                    .try_into()
                    .unwrap(),
            );
        }
    }
    let text = std::fs::read_to_string(dir.join("web-shop-orders.ndjson")).unwrap();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
        assert!(v["Amount"].is_f64() || v["Amount"].is_u64(), "{line}");
        records.push([
            "web-shop-orders".to_owned(),
            s("OrderId"),
            s("BillingFirstName"),
            s("BillingLastName"),
            s("CustomerEmail"),
            s("Phone"),
            s("Zip"),
        ]);
    }
    Readback { truth, records }
}

#[test]
fn truth_has_one_line_per_record_and_duplicates_to_find() {
    // How well the engine recovers the truth is tested end to end, with
    // the real engine, in tests/insights.rs and measured in BENCHMARKS.md.
    let (dir, report) = run(20_000, 5);
    let back = read_back(dir.path());
    assert_eq!(back.truth.len(), 20_000, "one truth line per record");
    assert_eq!(back.records.len(), 20_000);
    let mut persons = std::collections::HashSet::new();
    for r in &back.records {
        let p = back.truth.get(&(r[0].clone(), r[1].clone()));
        persons.insert(p.unwrap_or_else(|| panic!("no truth for {} {}", r[0], r[1])));
    }
    assert_eq!(persons.len() as u64, report.persons);
    // Most persons have several records.
    assert!(
        20_000 > report.persons + report.persons / 4,
        "{}",
        report.persons
    );
}

#[test]
fn pair_scores_perfect() {
    let s = scores(&[
        ("a", "p1"),
        ("a", "p1"),
        ("a", "p1"),
        ("b", "p2"),
        ("b", "p2"),
        ("c", "p3"),
    ]);
    assert_eq!(
        (s.true_positive_pairs, s.predicted_pairs, s.true_pairs),
        (4, 4, 4)
    );
    assert_eq!((s.precision, s.recall, s.f1), (1.0, 1.0, 1.0));
    assert_eq!((s.records, s.clusters, s.persons), (6, 3, 3));
}

#[test]
fn pair_scores_over_merged() {
    // One cluster holds two persons of two records each: 6 predicted pairs, 2 true.
    let s = scores(&[("x", "p1"), ("x", "p1"), ("x", "p2"), ("x", "p2")]);
    assert_eq!(
        (s.true_positive_pairs, s.predicted_pairs, s.true_pairs),
        (2, 6, 2)
    );
    assert_eq!(s.precision, 1.0 / 3.0);
    assert_eq!(s.recall, 1.0);
    assert_eq!(s.f1, 0.5);
}

#[test]
fn pair_scores_split() {
    // p1's three records are split 2 + 1: 1 of its 3 pairs found; p2 whole.
    let s = scores(&[
        ("c1", "p1"),
        ("c1", "p1"),
        ("c2", "p1"),
        ("c3", "p2"),
        ("c3", "p2"),
    ]);
    assert_eq!(
        (s.true_positive_pairs, s.predicted_pairs, s.true_pairs),
        (2, 2, 4)
    );
    assert_eq!(s.precision, 1.0);
    assert_eq!(s.recall, 0.5);
    assert_eq!(s.f1, 2.0 / 3.0);
}

#[test]
fn pair_scores_mixed_and_empty() {
    // Cluster a: p1 p1 p2 (3 pairs, 1 true); b: p2 p3 (1 pair, 0 true).
    // True pairs: p1 1, p2 1 -> 2.
    let s = scores(&[
        ("a", "p1"),
        ("a", "p1"),
        ("a", "p2"),
        ("b", "p2"),
        ("b", "p3"),
    ]);
    assert_eq!(
        (s.true_positive_pairs, s.predicted_pairs, s.true_pairs),
        (1, 4, 2)
    );
    assert_eq!((s.precision, s.recall), (0.25, 0.5));
    let s = scores(&[]);
    assert_eq!((s.precision, s.recall, s.records), (1.0, 1.0, 0));
    let s = scores(&[("a", "p1"), ("b", "p2")]);
    assert_eq!(
        (s.precision, s.recall, s.predicted_pairs, s.true_pairs),
        (1.0, 1.0, 0, 0)
    );
}

#[test]
fn workspace_parses_with_five_segments_and_measures() {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        host: toml::Value,
        insights: InsightsSection,
    }
    let (dir, report) = run(10_000, 9);
    let text = std::fs::read_to_string(&report.config).unwrap();
    let f: File = toml::from_str(&text).unwrap();
    assert_eq!(f.host["state_dir"].as_str(), Some(".triggerfish"));
    let i = f.insights;
    let names: Vec<&str> = i
        .sources
        .iter()
        .map(|s| s.name.get_ref().as_str())
        .collect();
    assert_eq!(
        names,
        ["crm-contacts", "web-shop-orders", "loyalty-members"]
    );
    for s in &i.sources {
        assert!(dir
            .path()
            .join(
                s.path
                    .as_ref()
                    .expect("a generated source has a path")
                    .get_ref()
            )
            .is_file());
        let mut fields: Vec<&str> = s.map.keys().map(String::as_str).collect();
        fields.retain(|f| !["City", "Country", "LoyaltyTier"].contains(f));
        assert_eq!(
            fields,
            ["Email", "FirstName", "LastName", "Phone", "PostalCode"]
        );
    }
    let u = i.unification.unwrap();
    let rules: Vec<Vec<String>> = u.rules.iter().map(|r| r.fields.get_ref().clone()).collect();
    assert_eq!(
        rules,
        [
            vec!["Email"],
            vec!["Phone"],
            vec!["FirstName", "LastName", "PostalCode"]
        ]
    );
    assert_eq!(i.segments.len(), 5);
    assert_eq!(i.measures.len(), 5);
    assert!(i.measures.iter().all(|m| m.dimension.is_none()));
    // Every threshold is crossed upward by the expected first values.
    let e = report.expected;
    let seg = [
        e.gold_members,
        e.loyalty_members,
        e.in_france,
        e.in_de_nl,
        e.without_email,
    ];
    for (s, v) in i.segments.iter().zip(seg) {
        let t = s.thresholds.as_ref().expect("thresholds").get_ref()[0];
        assert!(
            t.value > 0.0 && t.value <= v as f64,
            "{}: {t:?} vs {v}",
            s.name.get_ref()
        );
    }
    let avg = e.revenue_cents as f64 / 100.0 / e.orders as f64;
    let mea = [
        e.customers as f64,
        e.revenue_cents as f64 / 100.0,
        avg,
        e.large_orders as f64,
        e.loyalty_points as f64,
    ];
    for (m, v) in i.measures.iter().zip(mea) {
        let t = m.thresholds.as_ref().expect("thresholds").get_ref()[0];
        assert!(
            t.value > 0.0 && t.value <= v,
            "{}: {t:?} vs {v}",
            m.name.get_ref()
        );
    }
    // Column names are identifiers.
    let crm = std::fs::read_to_string(dir.path().join("crm-contacts.csv")).unwrap();
    let loyalty = std::fs::read_to_string(dir.path().join("loyalty-members.csv")).unwrap();
    for header in [crm.lines().next().unwrap(), loyalty.lines().next().unwrap()] {
        assert!(
            header
                .split(',')
                .all(triggerfish_data::store::valid_identifier),
            "{header}"
        );
    }
}

#[test]
fn noise_is_undone_by_the_normalisers() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let name = Normalizer::defaults_for("FirstName");
    for c in &COUNTRIES {
        for &n in c.first.iter().chain(c.last) {
            let folded = normalize(&name, n).unwrap();
            assert!(folded.is_ascii(), "{n} folds to {folded}");
            for _ in 0..30 {
                assert_eq!(
                    normalize(&name, &vary_name(&mut rng, n)).unwrap(),
                    folded,
                    "{n}"
                );
            }
        }
        let phone = Normalizer::defaults_for("Phone");
        let postal = Normalizer::defaults_for("PostalCode");
        for _ in 0..200 {
            let pc = postcode(&mut rng, c.code);
            let want = normalize(&postal, &pc);
            assert_eq!(
                normalize(&postal, &vary_postcode(&mut rng, c.code, &pc)),
                want
            );
            let p9: u64 = rng.random_range(600_000_000..800_000_000);
            let v = vary_phone(&mut rng, c, p9);
            assert_eq!(normalize(&phone, &v), Some(p9.to_string()), "{v}");
        }
    }
    let email = Normalizer::defaults_for("Email");
    for _ in 0..200 {
        let e = email_address(&mut rng, "Élodie", "van der Meer", 1234);
        assert_eq!(
            normalize(&email, &vary_email(&mut rng, &e)).as_deref(),
            Some(e.as_str())
        );
    }
}

#[test]
fn ids_are_unique() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let ids = Ids::new(&mut rng, 100_000);
    let mut codes = std::collections::HashSet::new();
    let mut phones = std::collections::HashSet::new();
    for n in 0..100_000 {
        assert!(codes.insert(ids.email_code(n)));
        let p = ids.phone9(n);
        assert!((600_000_000..800_000_000).contains(&p));
        assert!(phones.insert(p));
    }
}

/// Days since 1970-01-01 to (year, month, day), by the `time` crate
/// that [`datetime`] uses.
fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let date = OffsetDateTime::from_unix_timestamp(days * 86_400)
        .unwrap()
        .date();
    (date.year(), date.month().into(), date.day())
}

#[test]
fn headers_name_the_row_fields() {
    let fields = |row: serde_json::Value| -> Vec<String> {
        row.as_object().unwrap().keys().cloned().collect()
    };
    let crm = CrmRow {
        contact_id: "C0000001",
        first_name: "Marie",
        last_name: "Dubois",
        email: None,
        phone: Some("06 12 34 56 78"),
        postal_code: "75011",
        city: "Paris",
        country: "FR",
        modified_on: "2024-01-01T00:00:00Z",
    };
    let loyalty = LoyaltyRow {
        member_id: "L0000001",
        given_name: "Marie",
        family_name: "Dubois",
        email_address: Some("marie@example.com"),
        mobile: None,
        post_code: "75011",
        tier: "gold",
        points: 12,
        joined_on: "2024-01-01",
    };
    assert_eq!(
        fields(serde_json::to_value(&crm).unwrap()),
        Source::Crm.header().unwrap()
    );
    assert_eq!(
        fields(serde_json::to_value(&loyalty).unwrap()),
        Source::Loyalty.header().unwrap()
    );
}

#[test]
fn rows_are_quoted_and_amounts_have_two_decimals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.csv");
    let mut out = Out::csv(path.clone(), &["a", "b", "c"]).unwrap();
    out.write(&("x,y", "say \"hi\"", None::<&str>)).unwrap();
    out.finish().unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "a,b,c\n\"x,y\",\"say \"\"hi\"\"\",\n"
    );
    let path = dir.path().join("rows.ndjson");
    let mut out = Out::ndjson(path.clone()).unwrap();
    for cents in [500, 1_250, 29_999] {
        out.write(&WebRow {
            order_id: "O0000001",
            billing_first_name: "Zoë \"Z\"",
            billing_last_name: "van der Meer",
            customer_email: None,
            phone: Some("+31 612 345678"),
            zip: "1011 AB",
            amount: cents as f64 / 100.0,
            order_date: "2024-01-01T00:00:00Z",
        })
        .unwrap();
    }
    out.finish().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        r#"{"OrderId":"O0000001","BillingFirstName":"Zoë \"Z\"","BillingLastName":"van der Meer","CustomerEmail":null,"Phone":"+31 612 345678","Zip":"1011 AB","Amount":5.00,"OrderDate":"2024-01-01T00:00:00Z"}"#
    );
    assert!(lines[1].contains(r#""Amount":12.50,"#), "{}", lines[1]);
    assert!(lines[2].contains(r#""Amount":299.99,"#), "{}", lines[2]);
}

#[test]
fn dates() {
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let d = datetime(&mut rng, 1_704_067_200, 1_704_067_201);
    assert_eq!(d, "2024-01-01T00:00:00Z");
}

#[test]
fn errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let opts = GenerateOptions {
        rows: 0,
        seed: 1,
        ..Default::default()
    };
    assert!(matches!(
        generate(&opts, dir.path()),
        Err(GenerateError::NoRows)
    ));
    let opts = GenerateOptions {
        rows: MAX_ROWS + 1,
        seed: 1,
        ..Default::default()
    };
    assert!(matches!(
        generate(&opts, dir.path()),
        Err(GenerateError::TooManyRows { .. })
    ));
    // A file where the directory should be.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "").unwrap();
    let opts = GenerateOptions {
        rows: 10,
        seed: 1,
        ..Default::default()
    };
    let e = generate(&opts, &blocker.join("out"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("blocker"), "{e}");
    // A directory where a file should be.
    std::fs::create_dir_all(dir.path().join("o/truth.csv")).unwrap();
    let e = generate(&opts, &dir.path().join("o"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("cannot write") && e.contains("truth.csv"),
        "{e}"
    );
}

#[test]
fn nice_thresholds() {
    assert_eq!(nice_floor(77.6), 77.0);
    assert_eq!(nice_floor(123_456.0), 120_000.0);
    assert_eq!(nice_floor(0.3), 1.0);
    assert_eq!(up(100.0), 80.0);
}
