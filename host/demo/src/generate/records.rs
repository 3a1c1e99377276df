//! Records of a person as each source holds them, with the noise of real
//! systems.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use triggerfish_data::insights::normalize::Normalizer;

use super::output::{Detail, Source};
use super::persons::{pick, postcode, Country, Person, EMAIL_TAGS};
use super::Expected;

/// Records of a new person per source `[crm, web, loyalty]` before quotas;
/// the expectations are in the ratio 40 : 35 : 25.
pub(super) fn draw_counts(rng: &mut ChaCha8Rng) -> [u64; 3] {
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
pub(super) struct Ident {
    pub(super) first: String,
    pub(super) last: String,
    pub(super) email: Option<String>,
    pub(super) phone: Option<String>,
    pub(super) postcode: String,
    pub(super) city: &'static str,
}

/// Per source: chance that a non-anchor record drifts (typo, other last name,
/// moved), has no e-mail and no phone, has no e-mail, has no phone.
pub(super) fn shape(source: Source) -> [f64; 4] {
    match source {
        Source::Crm => [0.08, 0.05, 0.10, 0.07],
        Source::Web => [0.06, 0.01, 0.02, 0.15],
        Source::Loyalty => [0.08, 0.08, 0.15, 0.05],
    }
}

pub(super) fn identity(
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
pub(super) fn typo(rng: &mut ChaCha8Rng, s: &str) -> String {
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
pub(super) fn misspell(rng: &mut ChaCha8Rng, s: &str) -> String {
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
pub(super) fn vary_name(rng: &mut ChaCha8Rng, s: &str) -> String {
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
pub(super) fn vary_email(rng: &mut ChaCha8Rng, email: &str) -> String {
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
pub(super) fn vary_phone(rng: &mut ChaCha8Rng, c: &Country, phone9: u64) -> String {
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
pub(super) fn vary_postcode(rng: &mut ChaCha8Rng, country: &str, pc: &str) -> String {
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
pub(super) fn render(
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
pub(super) fn datetime(rng: &mut ChaCha8Rng, from: i64, to: i64) -> String {
    let t = rng.random_range(from..to);
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_default()
}
