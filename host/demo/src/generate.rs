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

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::hash::Hash;
use std::io::{self, BufWriter, Write as _};
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use triggerfish_data::insights::normalize::Normalizer;

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

// ---------------------------------------------------------------------------
// Output

/// Bytes buffered per output file.
const BUFFER: usize = 256 * 1024;

/// A file being written, one record at a time, that names itself in errors.
struct Out {
    path: PathBuf,
    format: Format,
}

enum Format {
    /// Records written by the `csv` crate (fields quoted as needed).
    Csv(Box<csv::Writer<File>>),
    /// One `serde_json` object a line.
    Ndjson(BufWriter<File>),
}

impl Out {
    /// A CSV file starting with the `header` record.
    fn csv(path: PathBuf, header: &[&str]) -> Result<Self, GenerateError> {
        let file = create(&path)?;
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .buffer_capacity(BUFFER)
            .from_writer(file);
        match w.write_record(header) {
            Ok(()) => Ok(Self {
                path,
                format: Format::Csv(Box::new(w)),
            }),
            Err(e) => Err(GenerateError::Write {
                path,
                source: csv_io(e),
            }),
        }
    }

    /// An NDJSON file.
    fn ndjson(path: PathBuf) -> Result<Self, GenerateError> {
        let file = create(&path)?;
        Ok(Self {
            path,
            format: Format::Ndjson(BufWriter::with_capacity(BUFFER, file)),
        })
    }

    /// Write one record: a CSV row, or a JSON object and a newline.
    fn write(&mut self, record: &impl Serialize) -> Result<(), GenerateError> {
        let written = match &mut self.format {
            Format::Csv(w) => w.serialize(record).map_err(csv_io),
            Format::Ndjson(w) => record
                .serialize(&mut serde_json::Serializer::with_formatter(&mut *w, Money))
                .map_err(io::Error::from)
                .and_then(|()| w.write_all(b"\n")),
        };
        written.map_err(|source| self.error(source))
    }

    fn finish(mut self) -> Result<PathBuf, GenerateError> {
        let flushed = match &mut self.format {
            Format::Csv(w) => w.flush(),
            Format::Ndjson(w) => w.flush(),
        };
        match flushed {
            Ok(()) => Ok(self.path),
            Err(source) => Err(GenerateError::Write {
                path: self.path,
                source,
            }),
        }
    }

    fn error(&self, source: io::Error) -> GenerateError {
        GenerateError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

fn create(path: &Path) -> Result<File, GenerateError> {
    File::create(path).map_err(|source| GenerateError::Write {
        path: path.to_owned(),
        source,
    })
}

/// The I/O error behind a CSV error (the only kind the rows written here can
/// give: they are flat, and hold strings and integers).
fn csv_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        kind => io::Error::other(format!("cannot write a CSV record: {kind:?}")),
    }
}

/// `serde_json`'s compact format, but floats have two decimals: the only
/// float written is an amount of money (`12.50`, not `12.5`).
struct Money;

impl serde_json::ser::Formatter for Money {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        write!(writer, "{value:.2}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Crm = 0,
    Web = 1,
    Loyalty = 2,
}

impl Source {
    const ALL: [Source; 3] = [Source::Crm, Source::Web, Source::Loyalty];

    fn name(self) -> &'static str {
        match self {
            Self::Crm => "crm-contacts",
            Self::Web => "web-shop-orders",
            Self::Loyalty => "loyalty-members",
        }
    }

    fn file(self) -> &'static str {
        match self {
            Self::Crm => "crm-contacts.csv",
            Self::Web => "web-shop-orders.ndjson",
            Self::Loyalty => "loyalty-members.csv",
        }
    }

    fn key_prefix(self) -> char {
        match self {
            Self::Crm => 'C',
            Self::Web => 'O',
            Self::Loyalty => 'L',
        }
    }

    /// CSV header, or `None` for NDJSON: the field names of [`CrmRow`] and
    /// [`LoyaltyRow`].
    fn header(self) -> Option<&'static [&'static str]> {
        match self {
            Self::Crm => Some(&[
                "ContactId",
                "FirstName",
                "LastName",
                "Email",
                "Phone",
                "PostalCode",
                "City",
                "Country",
                "ModifiedOn",
            ]),
            Self::Web => None,
            Self::Loyalty => Some(&[
                "MemberId",
                "GivenName",
                "FamilyName",
                "EmailAddress",
                "Mobile",
                "PostCode",
                "Tier",
                "Points",
                "JoinedOn",
            ]),
        }
    }
}

/// A row of `crm-contacts.csv`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CrmRow<'a> {
    contact_id: &'a str,
    first_name: &'a str,
    last_name: &'a str,
    email: Option<&'a str>,
    phone: Option<&'a str>,
    postal_code: &'a str,
    city: &'a str,
    country: &'a str,
    modified_on: &'a str,
}

/// A line of `web-shop-orders.ndjson` (absent e-mails and phones are `null`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct WebRow<'a> {
    order_id: &'a str,
    billing_first_name: &'a str,
    billing_last_name: &'a str,
    customer_email: Option<&'a str>,
    phone: Option<&'a str>,
    zip: &'a str,
    /// Written with two decimals (see [`Money`]).
    amount: f64,
    order_date: &'a str,
}

/// A row of `loyalty-members.csv`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LoyaltyRow<'a> {
    member_id: &'a str,
    given_name: &'a str,
    family_name: &'a str,
    email_address: Option<&'a str>,
    mobile: Option<&'a str>,
    post_code: &'a str,
    tier: &'a str,
    points: u64,
    joined_on: &'a str,
}

/// The values of one record that depend on its source, but its time.
#[derive(Clone, Copy)]
enum Detail {
    Crm { country: &'static str },
    Web { cents: u64 },
    Loyalty { tier: &'static str, points: u64 },
}

/// One record waiting in the shuffle window: its person and its fields but
/// the key (keys are given in file order). The text fields share one buffer,
/// so a waiting record is one small allocation, read from one place.
struct Pending {
    person: u64,
    /// First name, last name, e-mail, phone, postal code and time, one after
    /// the other.
    text: String,
    /// Where each of them ends in `text`.
    ends: [usize; 6],
    email: bool,
    phone: bool,
    city: &'static str,
    detail: Detail,
}

impl Pending {
    fn new(person: u64, id: &Ident, detail: Detail, time: &str) -> Self {
        let fields = [
            id.first.as_str(),
            &id.last,
            id.email.as_deref().unwrap_or_default(),
            id.phone.as_deref().unwrap_or_default(),
            &id.postcode,
            time,
        ];
        let mut text = String::with_capacity(fields.iter().map(|f| f.len()).sum());
        let ends = fields.map(|f| {
            text.push_str(f);
            text.len()
        });
        Self {
            person,
            text,
            ends,
            email: id.email.is_some(),
            phone: id.phone.is_some(),
            city: id.city,
            detail,
        }
    }

    /// Text field `i`.
    fn text(&self, i: usize) -> &str {
        let start = i.checked_sub(1).map_or(0, |j| self.ends[j]);
        &self.text[start..self.ends[i]]
    }

    fn write(&self, key: &str, out: &mut Out) -> Result<(), GenerateError> {
        let [first, last, email, phone, postcode, time] = std::array::from_fn(|i| self.text(i));
        let email = self.email.then_some(email);
        let phone = self.phone.then_some(phone);
        match self.detail {
            Detail::Crm { country } => out.write(&CrmRow {
                contact_id: key,
                first_name: first,
                last_name: last,
                email,
                phone,
                postal_code: postcode,
                city: self.city,
                country,
                modified_on: time,
            }),
            Detail::Web { cents } => out.write(&WebRow {
                order_id: key,
                billing_first_name: first,
                billing_last_name: last,
                customer_email: email,
                phone,
                zip: postcode,
                amount: cents as f64 / 100.0,
                order_date: time,
            }),
            Detail::Loyalty { tier, points } => out.write(&LoyaltyRow {
                member_id: key,
                given_name: first,
                family_name: last,
                email_address: email,
                mobile: phone,
                post_code: postcode,
                tier,
                points,
                joined_on: time,
            }),
        }
    }
}

struct Sink {
    source: Source,
    out: Out,
    pending: Vec<Pending>,
    written: u64,
    /// The key of the record being written, e.g. `C0000042`.
    key: String,
    /// Its person in `truth.csv`, e.g. `P0000007`.
    person: String,
}

impl Sink {
    fn create(source: Source, dir: &Path) -> Result<Self, GenerateError> {
        let path = dir.join(source.file());
        let out = match source.header() {
            Some(header) => Out::csv(path, header)?,
            None => Out::ndjson(path)?,
        };
        Ok(Self {
            source,
            out,
            pending: Vec::with_capacity(WINDOW),
            written: 0,
            key: String::with_capacity(16),
            person: String::with_capacity(16),
        })
    }

    fn push(
        &mut self,
        rng: &mut ChaCha8Rng,
        record: Pending,
        truth: &mut Out,
    ) -> Result<(), GenerateError> {
        self.pending.push(record);
        if self.pending.len() >= WINDOW {
            self.emit_one(rng, truth)?;
        }
        Ok(())
    }

    fn emit_one(&mut self, rng: &mut ChaCha8Rng, truth: &mut Out) -> Result<(), GenerateError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let i = rng.random_range(0..self.pending.len() as u32) as usize;
        let p = self.pending.swap_remove(i);
        self.written += 1;
        self.key.clear();
        let _ = write!(self.key, "{}{:07}", self.source.key_prefix(), self.written);
        p.write(&self.key, &mut self.out)?;
        self.person.clear();
        let _ = write!(self.person, "P{:07}", p.person + 1);
        truth.write(&(self.source.name(), &self.key, &self.person))
    }

    fn finish(
        mut self,
        rng: &mut ChaCha8Rng,
        truth: &mut Out,
    ) -> Result<SourceReport, GenerateError> {
        while !self.pending.is_empty() {
            self.emit_one(rng, truth)?;
        }
        let rows = self.written;
        let name = self.source.name();
        let path = self.out.finish()?;
        Ok(SourceReport { name, path, rows })
    }
}

// ---------------------------------------------------------------------------
// Persons

/// Bijections from person numbers to e-mail codes and phone numbers.
struct Ids {
    email_modulus: u64,
    email_offset: u64,
    phone_offset: u64,
}

/// Multiplier of both bijections: coprime with 10, so `n * A + B mod 10^k`
/// (and mod 2·10^8) is a permutation.
const A: u64 = 7_654_321;
const PHONE_SPACE: u64 = 200_000_000;

impl Ids {
    fn new(rng: &mut ChaCha8Rng, rows: u64) -> Self {
        let mut email_modulus = 10_000;
        while email_modulus <= rows {
            email_modulus *= 10;
        }
        Self {
            email_modulus,
            email_offset: rng.random_range(0..email_modulus),
            phone_offset: rng.random_range(0..PHONE_SPACE),
        }
    }

    /// A number unique to person `n` (`n < rows`).
    fn email_code(&self, n: u64) -> u64 {
        ((u128::from(n) * u128::from(A) + u128::from(self.email_offset))
            % u128::from(self.email_modulus)) as u64
    }

    /// Nine digits starting with 6 or 7, unique to person `n` (`n < 2·10^8`).
    fn phone9(&self, n: u64) -> u64 {
        600_000_000
            + ((u128::from(n) * u128::from(A) + u128::from(self.phone_offset))
                % u128::from(PHONE_SPACE)) as u64
    }
}

/// A country: code, weight, name pools, cities, phone prefixes.
struct Country {
    code: &'static str,
    weight: u32,
    first: &'static [&'static str],
    last: &'static [&'static str],
    cities: &'static [&'static str],
    /// International prefix, e.g. `+33`.
    dial: &'static str,
    /// Digits between the trunk `0` / the country code and the 9 digits.
    mobile: &'static str,
}

const COUNTRIES: [Country; 4] = [
    Country {
        code: "FR",
        weight: 55,
        first: FIRST_FR,
        last: LAST_FR,
        cities: CITIES_FR,
        dial: "+33",
        mobile: "",
    },
    Country {
        code: "GB",
        weight: 20,
        first: FIRST_GB,
        last: LAST_GB,
        cities: CITIES_GB,
        dial: "+44",
        mobile: "7",
    },
    Country {
        code: "DE",
        weight: 15,
        first: FIRST_DE,
        last: LAST_DE,
        cities: CITIES_DE,
        dial: "+49",
        mobile: "1",
    },
    Country {
        code: "NL",
        weight: 10,
        first: FIRST_NL,
        last: LAST_NL,
        cities: CITIES_NL,
        dial: "+31",
        mobile: "",
    },
];

const EMAIL_DOMAINS: &[&str] = &[
    "example.com",
    "example.net",
    "example.org",
    "mail.example",
    "post.example",
    "inbox.example",
];
const EMAIL_TAGS: &[&str] = &["news", "shop", "promo", "orders", "2024", "loyalty"];

struct Person {
    country: &'static Country,
    first: &'static str,
    last: &'static str,
    postcode: String,
    city: &'static str,
    /// Local part and domain of the e-mail, lower-case ASCII.
    email: String,
    phone9: u64,
    /// 0 bronze, 1 silver, 2 gold.
    tier: u8,
}

impl Person {
    fn new(rng: &mut ChaCha8Rng, ids: &Ids, n: u64) -> Self {
        let country = pick_country(rng);
        let pool = name_pool(rng, country, |c| c.first);
        let first = pick(rng, pool);
        let pool = name_pool(rng, country, |c| c.last);
        let last = pick(rng, pool);
        let postcode = postcode(rng, country.code);
        let city = pick(rng, country.cities);
        let email = email_address(rng, first, last, ids.email_code(n));
        let t = rng.random_range(0..100u32);
        let tier = if t < 12 {
            2
        } else if t < 40 {
            1
        } else {
            0
        };
        Self {
            country,
            first,
            last,
            postcode,
            city,
            email,
            phone9: ids.phone9(n),
            tier,
        }
    }
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len() as u32) as usize]
}

fn pick_country(rng: &mut ChaCha8Rng) -> &'static Country {
    let total: u32 = COUNTRIES.iter().map(|c| c.weight).sum();
    let mut r = rng.random_range(0..total);
    for c in &COUNTRIES {
        if r < c.weight {
            return c;
        }
        r -= c.weight;
    }
    &COUNTRIES[0]
}

/// Mostly the country's own names, sometimes another country's.
fn name_pool(
    rng: &mut ChaCha8Rng,
    home: &'static Country,
    which: fn(&Country) -> &'static [&'static str],
) -> &'static [&'static str] {
    if rng.random_bool(0.75) {
        which(home)
    } else {
        which(&COUNTRIES[rng.random_range(0..COUNTRIES.len() as u32) as usize])
    }
}

/// A canonical postal code for a country.
fn postcode(rng: &mut ChaCha8Rng, country: &str) -> String {
    const GB_AREAS: &[&str] = &[
        "SW", "SE", "NW", "N", "E", "W", "EC", "WC", "M", "B", "L", "LS", "G", "EH", "CF", "BS",
        "OX", "CB", "BN", "NG",
    ];
    const GB_INWARD: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";
    const LETTERS: &[u8] = b"ABCDEFGHJKLMNPRSTVWXZ";
    match country {
        "FR" => {
            let dept = match rng.random_range(1..=95u32) {
                20 => 21,
                d => d,
            };
            format!("{dept:02}{:03}", rng.random_range(0..1000u32))
        }
        "DE" => format!("{:05}", rng.random_range(1067..=99998u32)),
        "NL" => format!(
            "{} {}{}",
            rng.random_range(1000..=9999u32),
            char::from(pick(rng, LETTERS)),
            char::from(pick(rng, LETTERS))
        ),
        _ => format!(
            "{}{} {}{}{}",
            pick(rng, GB_AREAS),
            rng.random_range(1..=20u32),
            rng.random_range(0..10u32),
            char::from(pick(rng, GB_INWARD)),
            char::from(pick(rng, GB_INWARD))
        ),
    }
}

/// ASCII, lower-case, letters, digits and `-` only: for e-mail local parts.
fn email_word(s: &str) -> String {
    Normalizer::Ascii
        .apply(s)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// An address unique to the person: the code is unique and the name parts
/// hold no digits, so the trailing digits identify the person.
fn email_address(rng: &mut ChaCha8Rng, first: &str, last: &str, code: u64) -> String {
    let f = email_word(first);
    let l = email_word(last);
    let domain = pick(rng, EMAIL_DOMAINS);
    match rng.random_range(0..5u32) {
        0 => format!("{f}.{l}{code}@{domain}"),
        1 => format!("{}{l}{code}@{domain}", f.chars().next().unwrap_or('x')),
        2 => format!("{f}_{l}{code}@{domain}"),
        3 => format!("{l}.{f}{code}@{domain}"),
        _ => format!("{f}{code}@{domain}"),
    }
}

// ---------------------------------------------------------------------------
// Records

/// Records of a new person per source `[crm, web, loyalty]` before quotas;
/// the expectations are in the ratio 40 : 35 : 25.
fn draw_counts(rng: &mut ChaCha8Rng) -> [u64; 3] {
    let r = rng.random_range(0..100u32);
    let crm = if r < 58 {
        1
    } else if r < 61 {
        2
    } else {
        0
    };
    let r = rng.random_range(0..100u32);
    let loyalty = if r < 38 {
        1
    } else if r < 39 {
        2
    } else {
        0
    };
    let mut web = 0;
    if rng.random_bool(0.30) {
        web = 1;
        // Geometric with mean ~1.87 (capped): 0.30 * 1.87 = 0.56 per person.
        while web < 12 && rng.random_bool(0.465) {
            web += 1;
        }
    }
    [crm, web, loyalty]
}

/// The identifying fields of one record, as written.
struct Ident {
    first: String,
    last: String,
    email: Option<String>,
    phone: Option<String>,
    postcode: String,
    city: &'static str,
}

/// Per source: chance that a non-anchor record drifts (typo, other last name,
/// moved), has no e-mail and no phone, has no e-mail, has no phone.
fn shape(source: Source) -> [f64; 4] {
    match source {
        Source::Crm => [0.08, 0.05, 0.10, 0.07],
        Source::Web => [0.06, 0.01, 0.02, 0.15],
        Source::Loyalty => [0.08, 0.08, 0.15, 0.05],
    }
}

fn identity(
    rng: &mut ChaCha8Rng,
    p: &Person,
    source: Source,
    single: bool,
    anchor: bool,
    typos_per_mille: u16,
) -> Ident {
    let mut first = p.first.to_owned();
    let mut last = p.last.to_owned();
    let mut postcode = p.postcode.clone();
    let mut city = p.city;
    // Drawn only with typo noise on, so files without it stay the same.
    let fuzzy_only =
        typos_per_mille > 0 && !anchor && !single && rng.random_range(0..1000u16) < typos_per_mille;
    let (email, phone) = if fuzzy_only {
        if rng.random_bool(0.5) {
            first = misspell(rng, &first);
        } else {
            last = misspell(rng, &last);
        }
        (false, false)
    } else if anchor {
        (true, true)
    } else {
        let [drift, bare, no_email, no_phone] = shape(source);
        let r: f64 = rng.random();
        if !single && r < drift {
            // Name or address no longer match: keep e-mail or phone (or both).
            match rng.random_range(0..100u32) {
                0..40 => first = typo(rng, &first),
                40..55 => last = typo(rng, &last),
                55..65 => {
                    let other = pick(rng, p.country.last);
                    if other != p.last {
                        last = other.to_owned();
                    } else {
                        last = typo(rng, &last);
                    }
                }
                _ => {
                    postcode = self::postcode(rng, p.country.code);
                    city = pick(rng, p.country.cities);
                }
            }
            match rng.random_range(0..4u32) {
                0 => (true, false),
                1 => (false, true),
                _ => (true, true),
            }
        } else {
            let r = rng.random::<f64>();
            if r < bare {
                (false, false)
            } else if r < bare + no_email {
                (false, true)
            } else if r < bare + no_email + no_phone {
                (true, false)
            } else {
                (true, true)
            }
        }
    };
    Ident {
        first: vary_name(rng, &first),
        last: vary_name(rng, &last),
        email: email.then(|| vary_email(rng, &p.email)),
        phone: phone.then(|| vary_phone(rng, p.country, p.phone9)),
        postcode: vary_postcode(rng, p.country.code, &postcode),
        city,
    }
}

/// A visible misspelling: a letter dropped or doubled.
fn typo(rng: &mut ChaCha8Rng, s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let letters: Vec<usize> = (1..chars.len())
        .filter(|&i| chars[i].is_alphabetic())
        .collect();
    if letters.is_empty() {
        return format!("{s}{}", chars.last().copied().unwrap_or('e'));
    }
    let at = pick(rng, &letters);
    let mut out = String::with_capacity(s.len() + 2);
    let double = rng.random_bool(0.5);
    for (i, &c) in chars.iter().enumerate() {
        if i == at {
            if double {
                out.push(c);
                out.push(c);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A typo: two neighbouring letters swapped (half the time), one dropped or
/// one doubled. Names of fewer than three letters are left alone.
fn misspell(rng: &mut ChaCha8Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let letters: Vec<usize> = (0..chars.len())
        .filter(|&i| chars[i].is_alphabetic())
        .collect();
    if letters.len() < 3 {
        return s.to_owned();
    }
    let at = pick(rng, &letters[..letters.len() - 1]);
    match rng.random_range(0..4u32) {
        0 | 1 if chars[at + 1].is_alphabetic() && chars[at] != chars[at + 1] => {
            chars.swap(at, at + 1);
        }
        0..=2 => {
            chars.remove(at);
        }
        _ => chars.insert(at, chars[at]),
    }
    chars.into_iter().collect()
}

/// Case, accents and spacing that the name normaliser undoes.
fn vary_name(rng: &mut ChaCha8Rng, s: &str) -> String {
    match rng.random_range(0..100u32) {
        0..55 => s.to_owned(),
        55..65 => s.to_uppercase(),
        65..73 => s.to_lowercase(),
        73..83 => Normalizer::Ascii.apply(s),
        83..90 => format!(" {s} "),
        90..95 => {
            if s.contains(' ') {
                s.replace(' ', "  ")
            } else {
                format!("{s}  ")
            }
        }
        _ => Normalizer::Ascii.apply(s).to_uppercase(),
    }
}

/// Case, spaces and `+tags` that the e-mail normaliser undoes.
fn vary_email(rng: &mut ChaCha8Rng, email: &str) -> String {
    match rng.random_range(0..100u32) {
        0..68 => email.to_owned(),
        68..78 => {
            // Capitalise each word: `Marie.Dubois123@Example.com`.
            let mut out = String::with_capacity(email.len());
            let mut start = true;
            for c in email.chars() {
                out.push(if start { c.to_ascii_uppercase() } else { c });
                start = !c.is_ascii_alphanumeric();
            }
            out
        }
        78..84 => email.to_ascii_uppercase(),
        84..94 => match email.split_once('@') {
            Some((local, domain)) => format!("{local}+{}@{domain}", pick(rng, EMAIL_TAGS)),
            None => email.to_owned(),
        },
        _ => format!(" {email} "),
    }
}

/// National and international formats; the last nine digits are `phone9`.
fn vary_phone(rng: &mut ChaCha8Rng, c: &Country, phone9: u64) -> String {
    let d = phone9.to_string();
    let m = c.mobile;
    match (c.code, rng.random_range(0..5u32)) {
        ("FR", 0) => format!(
            "{} {} {} {} {} {}",
            c.dial,
            &d[..1],
            &d[1..3],
            &d[3..5],
            &d[5..7],
            &d[7..]
        ),
        ("FR", 1) => format!(
            "0{} {} {} {} {}",
            &d[..1],
            &d[1..3],
            &d[3..5],
            &d[5..7],
            &d[7..]
        ),
        ("FR", 2) => format!(
            "0{}.{}.{}.{}.{}",
            &d[..1],
            &d[1..3],
            &d[3..5],
            &d[5..7],
            &d[7..]
        ),
        (_, 0 | 1) => format!("{} {m}{} {}", c.dial, &d[..3], &d[3..]),
        (_, 2) => format!("0{m}{} {}", &d[..3], &d[3..]),
        (_, 3) => format!("{}{m}{d}", c.dial),
        _ => format!("0{m}{d}"),
    }
}

/// Spacing and case that the postal normaliser undoes.
fn vary_postcode(rng: &mut ChaCha8Rng, country: &str, pc: &str) -> String {
    let r = rng.random_range(0..100u32);
    match country {
        "FR" | "DE" => match r {
            0..85 => pc.to_owned(),
            85..93 => format!("{pc} "),
            _ if pc.len() == 5 => format!("{} {}", &pc[..2], &pc[2..]),
            _ => pc.to_owned(),
        },
        _ => match r {
            0..60 => pc.to_owned(),
            60..75 => pc.replace(' ', ""),
            75..90 => pc.to_lowercase(),
            _ => pc.replace(' ', "").to_lowercase(),
        },
    }
}

/// The values of one record that depend on its source, and its time:
/// `ModifiedOn`, `OrderDate` or the `JoinedOn` date.
fn render(
    rng: &mut ChaCha8Rng,
    p: &Person,
    source: Source,
    expected: &mut Expected,
) -> (Detail, String) {
    match source {
        Source::Crm => {
            let country = p.country.code;
            let modified = datetime(rng, 1_546_300_800, 1_767_225_600);
            (Detail::Crm { country }, modified)
        }
        Source::Loyalty => {
            // A second loyalty record keeps the tier (so the truth is clear).
            let points = match p.tier {
                2 => rng.random_range(5_000..20_000u64),
                1 => rng.random_range(1_000..5_000u64),
                _ => rng.random_range(0..1_000u64),
            };
            expected.loyalty_points += points;
            let mut joined = datetime(rng, 1_420_070_400, 1_767_225_600);
            joined.truncate("YYYY-MM-DD".len());
            let tier = ["bronze", "silver", "gold"][usize::from(p.tier.min(2))];
            (Detail::Loyalty { tier, points }, joined)
        }
        Source::Web => {
            let u: f64 = rng.random();
            let cents = 500 + (29_500.0 * u.powf(2.2)) as u64;
            expected.orders += 1;
            expected.revenue_cents += cents;
            if cents >= 20_000 {
                expected.large_orders += 1;
            }
            let date = datetime(rng, 1_640_995_200, 1_767_225_600);
            (Detail::Web { cents }, date)
        }
    }
}

/// A UTC time in `[from, to)` (Unix seconds) in RFC 3339,
/// `YYYY-MM-DDTHH:MM:SSZ`. The bounds used here are in 2015..2026; a time
/// outside the years 0 to 9999, which RFC 3339 cannot express, is empty.
fn datetime(rng: &mut ChaCha8Rng, from: i64, to: i64) -> String {
    let t = rng.random_range(from..to);
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Workspace

/// A round number at most `x`, two significant digits (at least 1).
fn nice_floor(x: f64) -> f64 {
    if x < 1.0 {
        return 1.0;
    }
    let mag = 10f64.powi(x.log10().floor() as i32 - 1);
    ((x / mag).floor() * mag).max(1.0)
}

/// Thresholds at 80% of the expected value, rounded down: crossed upward by
/// the first refresh.
fn up(expected: f64) -> f64 {
    nice_floor(expected * 0.8)
}

fn workspace_toml(opts: &GenerateOptions, e: &Expected) -> String {
    let count = |x: u64| format!("{}", up(x as f64) as u64);
    let money = |cents: f64| format!("{:.1}", up(cents / 100.0));
    let average = if e.orders == 0 {
        0.0
    } else {
        e.revenue_cents as f64 / e.orders as f64
    };
    let mut flags = String::new();
    if opts.typos_per_mille > 0 {
        let _ = write!(
            flags,
            " --typos {}",
            f64::from(opts.typos_per_mille) / 1000.0
        );
    }
    if opts.fuzzy {
        flags.push_str(" --fuzzy");
    }
    format!(
        r#"# Generated by `triggerfish demo generate --rows {rows} --seed {seed}{flags}`.
# truth.csv names the person behind every record (source,key,person).
# Thresholds sit at about 80% of the values a correct first refresh finds,
# so each one is crossed upward then.

[host]
state_dir = ".triggerfish"
# For bulk refreshes, before the first refresh: 16 KiB pages make a refresh
# about 10% faster and the event journal about a quarter slower (README, "Scale").
# store_page_bytes = 16384

[insights]
retries = 2
retry_backoff_ms = 500

[[insights.sources]]
name = "crm-contacts"
path = "crm-contacts.csv"
key = "ContactId"
updated_at = "ModifiedOn"
[insights.sources.types]
Phone = "string"
PostalCode = "string"
ModifiedOn = "datetime"
[insights.sources.map]
FirstName = "FirstName"
LastName = "LastName"
Email = "Email"
Phone = "Phone"
PostalCode = "PostalCode"
City = "City"
Country = "Country"

[[insights.sources]]
name = "web-shop-orders"
path = "web-shop-orders.ndjson"
key = "OrderId"
updated_at = "OrderDate"
[insights.sources.types]
Phone = "string"
Zip = "string"
Amount = "decimal"
OrderDate = "datetime"
[insights.sources.map]
FirstName = "BillingFirstName"
LastName = "BillingLastName"
Email = "CustomerEmail"
Phone = "Phone"
PostalCode = "Zip"

[[insights.sources]]
name = "loyalty-members"
path = "loyalty-members.csv"
key = "MemberId"
updated_at = "JoinedOn"
[insights.sources.types]
Mobile = "string"
PostCode = "string"
Tier = "string"
Points = "integer"
JoinedOn = "datetime"
[insights.sources.map]
FirstName = "GivenName"
LastName = "FamilyName"
Email = "EmailAddress"
Phone = "Mobile"
PostalCode = "PostCode"
LoyaltyTier = "Tier"

[insights.unification]
priority = ["crm-contacts", "loyalty-members", "web-shop-orders"]
[[insights.unification.rules]]
name = "email"
fields = ["Email"]
[[insights.unification.rules]]
name = "phone"
fields = ["Phone"]
[[insights.unification.rules]]
name = "name-and-postcode"
fields = ["FirstName", "LastName", "PostalCode"]
{fuzzy_rule}[insights.unification.merge]
default = "priority"

# Expected: {gold} gold members.
[[insights.segments]]
name = "gold-members"
filter = "LoyaltyTier eq 'gold'"
thresholds = [{{ value = {gold_t}, direction = "up" }}]

# Expected: {loyal} loyalty members.
[[insights.segments]]
name = "loyalty-members"
filter = "LoyaltyTier ne null"
thresholds = [{{ value = {loyal_t}, direction = "up" }}]

# Expected: {fr} customers in France.
[[insights.segments]]
name = "customers-in-france"
filter = "Country eq 'FR'"
thresholds = [{{ value = {fr_t}, direction = "up" }}]

# Expected: {denl} customers in Germany or the Netherlands.
[[insights.segments]]
name = "customers-in-de-nl"
filter = "Country in ('DE', 'NL')"
thresholds = [{{ value = {denl_t}, direction = "up" }}]

# Expected: {noemail} customers without an e-mail address.
[[insights.segments]]
name = "customers-without-email"
filter = "Email eq null"
thresholds = [{{ value = {noemail_t}, direction = "both" }}]

# Expected: {customers} customers.
[[insights.measures]]
name = "customer-count"
aggregate = "count"
entity = "Customer"
thresholds = [{{ value = {customers_t}, direction = "up" }}, {{ value = {customers_half}, direction = "down" }}]

# Expected: {revenue:.2}.
[[insights.measures]]
name = "total-revenue"
aggregate = "sum"
entity = "WebShopOrders"
field = "Amount"
filter = "Amount gt 0"
thresholds = [{{ value = {revenue_t}, direction = "up" }}]

# Expected: {average:.2}.
[[insights.measures]]
name = "average-order-value"
aggregate = "average"
entity = "WebShopOrders"
field = "Amount"
thresholds = [{{ value = {average_t}, direction = "both" }}]

# Expected: {large} orders of 200.00 or more.
[[insights.measures]]
name = "large-orders"
aggregate = "count"
entity = "WebShopOrders"
filter = "Amount ge 200"
thresholds = [{{ value = {large_t}, direction = "up" }}]

# Expected: {points} points.
[[insights.measures]]
name = "loyalty-points"
aggregate = "sum"
entity = "LoyaltyMembers"
field = "Points"
thresholds = [{{ value = {points_t}, direction = "up" }}]
"#,
        rows = opts.rows,
        seed = opts.seed,
        flags = flags,
        fuzzy_rule = if opts.fuzzy {
            "precision = { FirstName = \"high\", LastName = \"high\" }\nguards = [\"Email\", \"Phone\"]\n"
        } else {
            ""
        },
        gold = e.gold_members,
        gold_t = count(e.gold_members),
        loyal = e.loyalty_members,
        loyal_t = count(e.loyalty_members),
        fr = e.in_france,
        fr_t = count(e.in_france),
        denl = e.in_de_nl,
        denl_t = count(e.in_de_nl),
        noemail = e.without_email,
        noemail_t = count(e.without_email),
        customers = e.customers,
        customers_t = count(e.customers),
        customers_half = nice_floor(e.customers as f64 * 0.5) as u64,
        revenue = e.revenue_cents as f64 / 100.0,
        revenue_t = money(e.revenue_cents as f64),
        average = average / 100.0,
        average_t = money(average),
        large = e.large_orders,
        large_t = count(e.large_orders),
        points = e.loyalty_points,
        points_t = count(e.loyalty_points),
    )
}

// ---------------------------------------------------------------------------
// Pools. Accented letters are all ones the `ascii` normaliser folds.

#[rustfmt::skip]
const FIRST_FR: &[&str] = &[
    "Marie", "Élodie", "Camille", "Léa", "Chloé", "Manon", "Inès", "Zoé", "Noémie", "Hélène",
    "Céline", "Amélie", "Mélanie", "Sophie", "Julie", "Pauline", "Claire", "Anaïs", "Margaux",
    "Océane", "Émilie", "Aurélie", "Juliette", "Louise", "Jeanne", "Gaëlle", "Agnès", "Béatrice",
    "Cécile", "Danièle", "Françoise", "Geneviève", "Irène", "Josée", "Laetitia", "Maëlle", "Nadège",
    "Renée", "Solène", "Thérèse", "Jean", "Pierre", "Louis", "Lucas", "Hugo", "Théo", "Mathéo",
    "Noé", "Raphaël", "Gabriel", "Jérôme", "François", "Frédéric", "Stéphane", "Sébastien",
    "Grégoire", "Benoît", "Rémi", "Loïc", "Anaël", "Joël", "Mickaël", "Aurélien", "Clément",
    "Étienne", "Adèle", "Léon", "Jules", "Arthur", "Maxime", "Thomas", "Nicolas", "Antoine",
    "Julien", "Olivier", "Guillaume", "Vincent", "Xavier", "Yannick", "Cédric", "Hervé", "Jean-Luc",
    "Jean-Marc", "Marie-Claire", "Anne-Sophie", "Baptiste", "Romain", "Quentin", "Alexandre",
    "Valérie",
];

#[rustfmt::skip]
const LAST_FR: &[&str] = &[
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux",
    "Vincent", "Fournier", "Morel", "Girard", "André", "Lefebvre", "Mercier", "Dupont", "Lambert",
    "Bonnet", "François", "Martinez", "Legrand", "Garnier", "Faure", "Rousseau", "Blanc", "Guérin",
    "Muller", "Henry", "Roussel", "Nicolas", "Perrin", "Morin", "Mathieu", "Clément", "Gauthier",
    "Dumont", "Lopez", "Fontaine", "Chevalier", "Robin", "Masson", "Sanchez", "Gérard", "Nguyen",
    "Boyer", "Denis", "Lemaire", "Duval", "Joly", "Gautier", "Roger", "Roche", "Roy", "Noël",
    "Meyer", "Lucas", "Meunier", "Jean", "Pérez", "Marchand", "Dufour", "Blanchard", "Barbier",
    "Brun", "Dumas", "Brunet", "Schmitt", "Leroux", "Colin", "Fernandez", "Pierre", "Renard",
    "Arnaud", "Rolland", "Caron", "Aubert", "Giraud", "Leclerc", "Vidal", "Bourgeois", "Renaud",
    "Lemoine", "Picard", "Gaillard", "Philippe", "Leclercq", "Lacroix", "Fabre", "Dupuis",
    "Olivier", "Rodriguez", "Da Silva", "Hubert", "Louis", "Charles", "Guillot", "Rivière",
    "Le Gall", "Guillaume", "Adam", "Rey", "Moulin", "Gonzalez", "Berger", "Lecomte", "Ménard",
    "Fleury", "Deschamps", "Carpentier", "Julien", "Benoît", "Paris", "Maillard", "Marchal",
    "Aubry", "Vasseur", "Le Roux", "Renault", "Jacquet", "Collet", "Prévost", "Poirier",
    "Charpentier", "Royer", "Huet", "Baron", "Dupuy", "Pons", "Paul", "Laine", "Carré", "Breton",
    "Rémy", "Schneider", "Perrot", "Barré", "Marty", "Cousin", "Besnard", "Héraud", "Lévêque",
    "Bélanger", "Desprès", "Crépin", "Lebrun", "Tessier",
];

#[rustfmt::skip]
const FIRST_GB: &[&str] = &[
    "Oliver", "George", "Harry", "Jack", "Jacob", "Charlie", "Oscar", "William", "James", "Henry",
    "Alfie", "Archie", "Joshua", "Freddie", "Edward", "Samuel", "Daniel", "Benjamin", "Alexander",
    "Amelia", "Olivia", "Isla", "Emily", "Poppy", "Ava", "Isabella", "Jessica", "Lily", "Grace",
    "Evie", "Ella", "Charlotte", "Mia", "Ruby", "Florence", "Harriet", "Imogen", "Eleanor",
    "Siobhan", "Niamh", "Aoife", "Rhys", "Gareth", "Dylan", "Bethan", "Catrin", "Fiona", "Hamish",
    "Callum", "Eilidh", "Rebecca", "Matthew",
];

#[rustfmt::skip]
const LAST_GB: &[&str] = &[
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson",
    "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson",
    "Clarke", "Patel", "Khan", "Lewis", "James", "Phillips", "Mason", "Mitchell", "Rose", "Davis",
    "Cox", "Alexander", "Morgan", "Moore", "Edwards", "Hughes", "Turner", "Hill", "Harris", "Lee",
    "Cooper", "Ward", "Morris", "King", "Baker", "Harrison", "Scott", "Young", "Allen", "Watson",
    "Carter", "Murphy", "O'Brien", "O'Connor", "MacDonald", "Campbell", "Stewart", "Anderson",
    "Reid", "Murray", "Kelly", "Price", "Bennett", "Griffiths", "Fletcher", "Holmes", "Fraser",
    "Gallagher", "Shaw",
];

#[rustfmt::skip]
const FIRST_DE: &[&str] = &[
    "Jürgen", "Jörg", "Günter", "Björn", "Sören", "Uwe", "Dieter", "Klaus", "Stefan", "Matthias",
    "Andreas", "Tobias", "Florian", "Lukas", "Maximilian", "Felix", "Jonas", "Leon", "Paul",
    "Niklas", "Moritz", "Sebastian", "Katrin", "Jördis", "Käthe", "Dörte", "Anja", "Birgit",
    "Sabine", "Ursula", "Monika", "Petra", "Claudia", "Susanne", "Franziska", "Johanna", "Lena",
    "Hannah", "Leonie", "Annika", "Greta", "Frieda", "Mareike", "Ute", "Heike", "Gisela",
];

#[rustfmt::skip]
const LAST_DE: &[&str] = &[
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
    "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
    "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann", "Lange", "Schmitt", "Werner",
    "Schmitz", "Krause", "Meier", "Lehmann", "Schmid", "Schulze", "Maier", "Köhler", "Herrmann",
    "König", "Walter", "Mayer", "Huber", "Kaiser", "Fuchs", "Peters", "Lang", "Scholz", "Möller",
    "Jung", "Hahn", "Vogel", "Friedrich", "Keller", "Günther", "Frank", "Berger", "Winkler", "Roth",
    "Beck", "Lorenz", "Baumann", "Franke", "Albrecht", "Schuster", "Simon", "Ludwig", "Böhm",
    "Winter", "Kraus", "Martin", "Schumacher", "Krämer", "Vogt", "Stein", "Jäger", "Otto", "Sommer",
    "Seidel", "Heinrich", "Brandt", "Haas",
];

#[rustfmt::skip]
const FIRST_NL: &[&str] = &[
    "Daan", "Sem", "Bram", "Lars", "Thijs", "Jesse", "Ruben", "Stijn", "Joris", "Pieter", "Maarten",
    "Wouter", "Sander", "Koen", "Bas", "Niels", "Floor", "Sanne", "Fleur", "Lotte", "Femke",
    "Anouk", "Iris", "Noor", "Roos", "Eva", "Marloes", "Ilse", "Esmée", "Maaike", "Wietske",
    "Ineke", "Joëlle", "Chloë",
];

#[rustfmt::skip]
const LAST_NL: &[&str] = &[
    "de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Janssen", "Visser",
    "Smit", "Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks",
    "van Leeuwen", "Dekker", "Brouwer", "de Wit", "Dijkstra", "Smits", "de Graaf", "van der Meer",
    "van der Linden", "Kok", "Jacobs", "de Haan", "Vermeulen", "van den Heuvel", "van der Veen",
    "van den Broek", "de Bruijn", "de Bruin", "van der Heijden", "Schouten", "van Beek", "Willems",
    "van Vliet", "van de Ven", "Hoekstra", "Maas", "Verhoeven", "Koster", "van Dam", "van der Wal",
    "Prins", "Blom", "Huisman",
];

#[rustfmt::skip]
const CITIES_FR: &[&str] = &[
    "Paris", "Lyon", "Marseille", "Toulouse", "Nice", "Nantes", "Strasbourg", "Montpellier",
    "Bordeaux", "Lille", "Rennes", "Reims", "Saint-Étienne", "Le Havre", "Toulon", "Grenoble",
    "Dijon", "Angers", "Nîmes", "Villeurbanne", "Clermont-Ferrand", "Aix-en-Provence", "Brest",
    "Limoges", "Tours", "Amiens", "Perpignan", "Metz", "Besançon", "Orléans",
];

#[rustfmt::skip]
const CITIES_GB: &[&str] = &[
    "London", "Birmingham", "Manchester", "Leeds", "Glasgow", "Liverpool", "Bristol", "Sheffield",
    "Edinburgh", "Cardiff", "Leicester", "Nottingham", "Newcastle", "Brighton", "Oxford",
    "Cambridge", "Belfast", "York",
];

#[rustfmt::skip]
const CITIES_DE: &[&str] = &[
    "Berlin", "Hamburg", "München", "Köln", "Frankfurt am Main", "Stuttgart", "Düsseldorf",
    "Leipzig", "Dortmund", "Essen", "Bremen", "Dresden", "Hannover", "Nürnberg", "Bonn", "Münster",
];

#[rustfmt::skip]
const CITIES_NL: &[&str] = &[
    "Amsterdam", "Rotterdam", "Den Haag", "Utrecht", "Eindhoven", "Groningen", "Tilburg", "Almere",
    "Breda", "Nijmegen", "Haarlem", "Arnhem", "Leiden", "Delft", "Maastricht",
];

#[cfg(test)]
mod tests {
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
}
