//! Reproducible demo data with a known duplicate structure
//! (`triggerfish demo generate`).
//!
//! [`generate`] invents persons and writes records of them into three source
//! files (`crm-contacts.csv`, `web-shop-orders.ndjson`, `loyalty-members.csv`),
//! with the noise real systems have: e-mail case, spaces and `+tags`, phone
//! formats, name case, accents and spacing, postal-code spacing and case,
//! missing e-mails and phones, typos, changed last names and moves. Every
//! record stays linked to its person by at least one of the three match rules
//! (`Email`; `Phone`; `FirstName` + `LastName` + `PostalCode`):
//!
//! - a person with several records has one *anchor* record carrying the
//!   person's e-mail, phone, name and postal code (up to normalisation);
//! - every other record keeps the name and postal code (up to normalisation),
//!   or, when it has a typo, another last name or another address, keeps the
//!   e-mail or the phone;
//! - with typo noise ([`GenerateOptions::typos_per_mille`]), some non-anchor
//!   records have a misspelt name and neither e-mail nor phone: only a fuzzy
//!   name rule within the postal code links them.
//!
//! E-mails and the last nine digits of phones are unique among persons (both
//! derived from the person's number by a bijection), and the name pools and
//! postal-code spaces are large enough that two persons rarely share a name
//! and a postal code. `truth.csv` names the person behind every record, so a
//! unification can be scored with [`pair_scores`].
//!
//! The output is a function of [`GenerateOptions`] only: one `ChaCha8Rng`
//! seeded with `seed` drives everything, so the same seed gives the same
//! bytes. Rows are streamed through buffered writers; the only buffers are a
//! small per-source shuffle window (so a person's records are not adjacent),
//! so memory does not grow with `rows`.

mod output;
mod persons;
mod pools;
mod records;
#[cfg(test)]
mod tests;
mod workspace;

use std::collections::HashMap;
use std::hash::Hash;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use output::{Out, Pending, Sink, Source};
use persons::{Ids, Person};
use records::{draw_counts, identity, render};
use workspace::workspace_toml;

/// The largest `rows` accepted: persons are numbered into a 200-million-wide
/// phone space.
pub const MAX_ROWS: u64 = 200_000_000;

/// Records waiting per source before one is written, picked at random.
const WINDOW: usize = 4096;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GenerateOptions {
    /// Records across the three sources (about 40% CRM, 35% orders, 25% loyalty).
    pub rows: u64,
    /// Seed of the random generator; the same seed gives the same files.
    pub seed: u64,
    /// Typo noise, per mille of the records that are not a person's anchor:
    /// such a record has no e-mail and no phone, and a letter of its first
    /// or last name swapped, dropped or doubled, so only a fuzzy name rule
    /// within its postal code finds its person. 0 adds none (the files are
    /// then as without the option).
    pub typos_per_mille: u16,
    /// Write a fuzzy name-and-postcode rule (names at `high` precision,
    /// guarded by e-mail and phone) instead of the exact one.
    pub fuzzy: bool,
}

/// The largest typo noise accepted, per mille.
pub const MAX_TYPOS_PER_MILLE: u16 = 500;

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// `rows` was 0.
    #[error("the number of rows must be at least 1")]
    NoRows,
    /// `rows` was above [`MAX_ROWS`].
    #[error("{rows} rows is more than the generator supports (at most {max})")]
    TooManyRows { rows: u64, max: u64 },
    /// The output directory could not be created (the cause is the source).
    #[error("cannot create directory {}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file could not be created or written (the cause is the source).
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One source file written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceReport {
    /// Source name as in `triggerfish.toml`, e.g. `crm-contacts`.
    pub name: &'static str,
    /// The file written.
    pub path: PathBuf,
    /// Records (data rows) in it.
    pub rows: u64,
}

/// Values the generated workspace should show after a correct first refresh.
///
/// Segment sizes assume a perfect unification (one customer per person);
/// the measures over source entities do not depend on unification.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Expected {
    /// Persons: customers after a perfect unification.
    pub customers: u64,
    /// Persons with at least one loyalty record.
    pub loyalty_members: u64,
    /// Persons whose loyalty tier is `gold`.
    pub gold_members: u64,
    /// Persons with a CRM record in France (`Country` comes from CRM only).
    pub in_france: u64,
    /// Persons with a CRM record in Germany or the Netherlands.
    pub in_de_nl: u64,
    /// Persons none of whose records has an e-mail.
    pub without_email: u64,
    /// Web-shop orders.
    pub orders: u64,
    /// Sum of order amounts, in cents.
    pub revenue_cents: u64,
    /// Orders of 200.00 or more.
    pub large_orders: u64,
    /// Sum of loyalty points over loyalty records.
    pub loyalty_points: u64,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateReport {
    /// The three source files, in `crm-contacts`, `web-shop-orders`,
    /// `loyalty-members` order.
    pub sources: Vec<SourceReport>,
    /// `truth.csv`: `source,key,person` for every record.
    pub truth: PathBuf,
    /// The workspace configuration, `triggerfish.toml`.
    pub config: PathBuf,
    /// Distinct persons behind the records.
    pub persons: u64,
    /// What a correct refresh should find.
    pub expected: Expected,
}

impl GenerateReport {
    /// Records across all sources (equals the requested `rows`).
    pub fn rows(&self) -> u64 {
        self.sources.iter().map(|s| s.rows).sum()
    }
}

/// Pairwise scores of a clustering against the truth.
///
/// Over all unordered pairs of records: a pair is *predicted* when both
/// records are in one cluster, *true* when both belong to one person. With
/// `n_ij` records in cluster `i` and person `j`, `a_i` in cluster `i` and
/// `b_j` of person `j`:
///
/// - `true_positive_pairs` = Σ C(n_ij, 2),
/// - `predicted_pairs` = Σ C(a_i, 2),
/// - `true_pairs` = Σ C(b_j, 2),
/// - `precision` = true positives / predicted pairs (1 when nothing is merged),
/// - `recall` = true positives / true pairs (1 when there are no duplicates),
/// - `f1` = their harmonic mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub true_positive_pairs: u64,
    pub predicted_pairs: u64,
    pub true_pairs: u64,
    /// Records scored.
    pub records: u64,
    /// Distinct clusters.
    pub clusters: u64,
    /// Distinct persons.
    pub persons: u64,
}

/// Pairwise precision and recall of `(cluster, person)` assignments, one per
/// record; see [`Scores`]. Linear in the number of records.
pub fn pair_scores(assignments: impl IntoIterator<Item = (String, String)>) -> Scores {
    let mut cells: HashMap<(String, String), u64> = HashMap::new();
    let mut records = 0u64;
    for (cluster, person) in assignments {
        *cells.entry((cluster, person)).or_default() += 1;
        records += 1;
    }
    let pairs = |n: u64| n * n.saturating_sub(1) / 2;
    fn add<K: Hash + Eq>(m: &mut HashMap<K, u64>, k: K, n: u64) {
        *m.entry(k).or_default() += n;
    }
    let mut clusters: HashMap<&str, u64> = HashMap::new();
    let mut persons: HashMap<&str, u64> = HashMap::new();
    let mut tp = 0;
    for ((c, p), &n) in &cells {
        tp += pairs(n);
        add(&mut clusters, c.as_str(), n);
        add(&mut persons, p.as_str(), n);
    }
    let predicted: u64 = clusters.values().map(|&n| pairs(n)).sum();
    let truth: u64 = persons.values().map(|&n| pairs(n)).sum();
    let ratio = |num: u64, den: u64| {
        if den == 0 {
            1.0
        } else {
            num as f64 / den as f64
        }
    };
    let precision = ratio(tp, predicted);
    let recall = ratio(tp, truth);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    Scores {
        precision,
        recall,
        f1,
        true_positive_pairs: tp,
        predicted_pairs: predicted,
        true_pairs: truth,
        records,
        clusters: clusters.len() as u64,
        persons: persons.len() as u64,
    }
}

/// Write the three source files, `truth.csv` and `triggerfish.toml` into
/// `out` (created if missing; existing files are replaced).
pub fn generate(opts: &GenerateOptions, out: &Path) -> Result<GenerateReport, GenerateError> {
    if opts.rows == 0 {
        return Err(GenerateError::NoRows);
    }
    if opts.rows > MAX_ROWS {
        return Err(GenerateError::TooManyRows {
            rows: opts.rows,
            max: MAX_ROWS,
        });
    }
    std::fs::create_dir_all(out).map_err(|source| GenerateError::CreateDir {
        path: out.to_owned(),
        source,
    })?;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let ids = Ids::new(&mut rng, opts.rows);

    let crm_rows = opts.rows * 40 / 100;
    let loyalty_rows = opts.rows * 25 / 100;
    let quotas = [crm_rows, opts.rows - crm_rows - loyalty_rows, loyalty_rows];

    let mut truth = Out::csv(out.join("truth.csv"), &["source", "key", "person"])?;
    let mut sinks = [
        Sink::create(Source::Crm, out)?,
        Sink::create(Source::Web, out)?,
        Sink::create(Source::Loyalty, out)?,
    ];
    let mut remaining = quotas;
    let mut expected = Expected::default();
    let mut persons = 0u64;
    let mut plan: Vec<Source> = Vec::with_capacity(32);
    while remaining.iter().any(|&r| r > 0) {
        let counts = loop {
            let drawn = draw_counts(&mut rng);
            let c = [0, 1, 2].map(|i| drawn[i].min(remaining[i]));
            if c.iter().any(|&n| n > 0) {
                break c;
            }
        };
        for (r, c) in remaining.iter_mut().zip(counts) {
            *r -= c;
        }
        let person = Person::new(&mut rng, &ids, persons);
        plan.clear();
        for (source, n) in Source::ALL.into_iter().zip(counts) {
            plan.extend(std::iter::repeat_n(source, n as usize));
        }
        let anchor = (plan.len() > 1).then(|| rng.random_range(0..plan.len() as u32) as usize);
        let mut any_email = false;
        for (k, &source) in plan.iter().enumerate() {
            let ident = identity(
                &mut rng,
                &person,
                source,
                plan.len() == 1,
                anchor == Some(k),
                opts.typos_per_mille,
            );
            any_email |= ident.email.is_some();
            let (detail, time) = render(&mut rng, &person, source, &mut expected);
            let record = Pending::new(persons, &ident, detail, &time);
            sinks[source as usize].push(&mut rng, record, &mut truth)?;
        }
        expected.customers += 1;
        if counts[Source::Loyalty as usize] > 0 {
            expected.loyalty_members += 1;
            if person.tier == 2 {
                expected.gold_members += 1;
            }
        }
        if counts[Source::Crm as usize] > 0 {
            match person.country.code {
                "FR" => expected.in_france += 1,
                "DE" | "NL" => expected.in_de_nl += 1,
                _ => {}
            }
        }
        if !any_email {
            expected.without_email += 1;
        }
        persons += 1;
    }
    let mut sources = Vec::with_capacity(3);
    for sink in sinks {
        sources.push(sink.finish(&mut rng, &mut truth)?);
    }
    let truth_path = truth.finish()?;

    let config_path = out.join("triggerfish.toml");
    std::fs::write(&config_path, workspace_toml(opts, &expected)).map_err(|source| {
        GenerateError::Write {
            path: config_path.clone(),
            source,
        }
    })?;

    Ok(GenerateReport {
        sources,
        truth: truth_path,
        config: config_path,
        persons,
        expected,
    })
}
