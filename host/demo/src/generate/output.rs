//! The output files: CSV and NDJSON writers that name their file in errors,
//! and the shuffle window records wait in before they are written.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write as _};
use std::path::{Path, PathBuf};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::records::Ident;
use super::{GenerateError, SourceReport, WINDOW};

/// Bytes buffered per output file.
pub(super) const BUFFER: usize = 256 * 1024;

/// A file being written, one record at a time, that names itself in errors.
pub(super) struct Out {
    path: PathBuf,
    format: Format,
}

pub(super) enum Format {
    /// Records written by the `csv` crate (fields quoted as needed).
    Csv(Box<csv::Writer<File>>),
    /// One `serde_json` object a line.
    Ndjson(BufWriter<File>),
}

impl Out {
    /// A CSV file starting with the `header` record.
    pub(super) fn csv(path: PathBuf, header: &[&str]) -> Result<Self, GenerateError> {
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
    pub(super) fn ndjson(path: PathBuf) -> Result<Self, GenerateError> {
        let file = create(&path)?;
        Ok(Self {
            path,
            format: Format::Ndjson(BufWriter::with_capacity(BUFFER, file)),
        })
    }

    /// Write one record: a CSV row, or a JSON object and a newline.
    pub(super) fn write(&mut self, record: &impl Serialize) -> Result<(), GenerateError> {
        let written = match &mut self.format {
            Format::Csv(w) => w.serialize(record).map_err(csv_io),
            Format::Ndjson(w) => record
                .serialize(&mut serde_json::Serializer::with_formatter(&mut *w, Money))
                .map_err(io::Error::from)
                .and_then(|()| w.write_all(b"\n")),
        };
        written.map_err(|source| self.error(source))
    }

    pub(super) fn finish(mut self) -> Result<PathBuf, GenerateError> {
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

    pub(super) fn error(&self, source: io::Error) -> GenerateError {
        GenerateError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

pub(super) fn create(path: &Path) -> Result<File, GenerateError> {
    File::create(path).map_err(|source| GenerateError::Write {
        path: path.to_owned(),
        source,
    })
}

/// The I/O error behind a CSV error (the only kind the rows written here can
/// give: they are flat, and hold strings and integers).
pub(super) fn csv_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        kind => io::Error::other(format!("cannot write a CSV record: {kind:?}")),
    }
}

/// `serde_json`'s compact format, but floats have two decimals: the only
/// float written is an amount of money (`12.50`, not `12.5`).
pub(super) struct Money;

impl serde_json::ser::Formatter for Money {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        write!(writer, "{value:.2}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Crm = 0,
    Web = 1,
    Loyalty = 2,
}

impl Source {
    pub(super) const ALL: [Source; 3] = [Source::Crm, Source::Web, Source::Loyalty];

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Crm => "crm-contacts",
            Self::Web => "web-shop-orders",
            Self::Loyalty => "loyalty-members",
        }
    }

    pub(super) fn file(self) -> &'static str {
        match self {
            Self::Crm => "crm-contacts.csv",
            Self::Web => "web-shop-orders.ndjson",
            Self::Loyalty => "loyalty-members.csv",
        }
    }

    pub(super) fn key_prefix(self) -> char {
        match self {
            Self::Crm => 'C',
            Self::Web => 'O',
            Self::Loyalty => 'L',
        }
    }

    /// CSV header, or `None` for NDJSON: the field names of [`CrmRow`] and
    /// [`LoyaltyRow`].
    pub(super) fn header(self) -> Option<&'static [&'static str]> {
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
pub(super) struct CrmRow<'a> {
    pub(super) contact_id: &'a str,
    pub(super) first_name: &'a str,
    pub(super) last_name: &'a str,
    pub(super) email: Option<&'a str>,
    pub(super) phone: Option<&'a str>,
    pub(super) postal_code: &'a str,
    pub(super) city: &'a str,
    pub(super) country: &'a str,
    pub(super) modified_on: &'a str,
}

/// A line of `web-shop-orders.ndjson` (absent e-mails and phones are `null`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct WebRow<'a> {
    pub(super) order_id: &'a str,
    pub(super) billing_first_name: &'a str,
    pub(super) billing_last_name: &'a str,
    pub(super) customer_email: Option<&'a str>,
    pub(super) phone: Option<&'a str>,
    pub(super) zip: &'a str,
    /// Written with two decimals (see [`Money`]).
    pub(super) amount: f64,
    pub(super) order_date: &'a str,
}

/// A row of `loyalty-members.csv`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct LoyaltyRow<'a> {
    pub(super) member_id: &'a str,
    pub(super) given_name: &'a str,
    pub(super) family_name: &'a str,
    pub(super) email_address: Option<&'a str>,
    pub(super) mobile: Option<&'a str>,
    pub(super) post_code: &'a str,
    pub(super) tier: &'a str,
    pub(super) points: u64,
    pub(super) joined_on: &'a str,
}

/// The values of one record that depend on its source, but its time.
#[derive(Clone, Copy)]
pub(super) enum Detail {
    Crm { country: &'static str },
    Web { cents: u64 },
    Loyalty { tier: &'static str, points: u64 },
}

/// One record waiting in the shuffle window: its person and its fields but
/// the key (keys are given in file order). The text fields share one buffer,
/// so a waiting record is one small allocation, read from one place.
pub(super) struct Pending {
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
    pub(super) fn new(person: u64, id: &Ident, detail: Detail, time: &str) -> Self {
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
    pub(super) fn text(&self, i: usize) -> &str {
        let start = i.checked_sub(1).map_or(0, |j| self.ends[j]);
        &self.text[start..self.ends[i]]
    }

    pub(super) fn write(&self, key: &str, out: &mut Out) -> Result<(), GenerateError> {
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

pub(super) struct Sink {
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
    pub(super) fn create(source: Source, dir: &Path) -> Result<Self, GenerateError> {
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

    pub(super) fn push(
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

    pub(super) fn emit_one(
        &mut self,
        rng: &mut ChaCha8Rng,
        truth: &mut Out,
    ) -> Result<(), GenerateError> {
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

    pub(super) fn finish(
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
