//! Invented persons: their numbers, e-mails, phones, names and addresses.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use triggerfish_data::insights::normalize::Normalizer;

use super::pools::{
    CITIES_DE, CITIES_FR, CITIES_GB, CITIES_NL, FIRST_DE, FIRST_FR, FIRST_GB, FIRST_NL, LAST_DE,
    LAST_FR, LAST_GB, LAST_NL,
};

/// Bijections from person numbers to e-mail codes and phone numbers.
pub(super) struct Ids {
    email_modulus: u64,
    email_offset: u64,
    phone_offset: u64,
}

/// Multiplier of both bijections: coprime with 10, so `n * A + B mod 10^k`
/// (and mod 2·10^8) is a permutation.
pub(super) const A: u64 = 7_654_321;
pub(super) const PHONE_SPACE: u64 = 200_000_000;

impl Ids {
    pub(super) fn new(rng: &mut ChaCha8Rng, rows: u64) -> Self {
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
    pub(super) fn email_code(&self, n: u64) -> u64 {
        ((u128::from(n) * u128::from(A) + u128::from(self.email_offset))
            % u128::from(self.email_modulus)) as u64
    }

    /// Nine digits starting with 6 or 7, unique to person `n` (`n < 2·10^8`).
    pub(super) fn phone9(&self, n: u64) -> u64 {
        600_000_000
            + ((u128::from(n) * u128::from(A) + u128::from(self.phone_offset))
                % u128::from(PHONE_SPACE)) as u64
    }
}

/// A country: code, weight, name pools, cities, phone prefixes.
pub(super) struct Country {
    pub(super) code: &'static str,
    pub(super) weight: u32,
    pub(super) first: &'static [&'static str],
    pub(super) last: &'static [&'static str],
    pub(super) cities: &'static [&'static str],
    /// International prefix, e.g. `+33`.
    pub(super) dial: &'static str,
    /// Digits between the trunk `0` / the country code and the 9 digits.
    pub(super) mobile: &'static str,
}

pub(super) const COUNTRIES: [Country; 4] = [
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

pub(super) const EMAIL_DOMAINS: &[&str] = &[
    "example.com",
    "example.net",
    "example.org",
    "mail.example",
    "post.example",
    "inbox.example",
];
pub(super) const EMAIL_TAGS: &[&str] = &["news", "shop", "promo", "orders", "2024", "loyalty"];

pub(super) struct Person {
    pub(super) country: &'static Country,
    pub(super) first: &'static str,
    pub(super) last: &'static str,
    pub(super) postcode: String,
    pub(super) city: &'static str,
    /// Local part and domain of the e-mail, lower-case ASCII.
    pub(super) email: String,
    pub(super) phone9: u64,
    /// 0 bronze, 1 silver, 2 gold.
    pub(super) tier: u8,
}

impl Person {
    pub(super) fn new(rng: &mut ChaCha8Rng, ids: &Ids, n: u64) -> Self {
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

pub(super) fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len() as u32) as usize]
}

pub(super) fn pick_country(rng: &mut ChaCha8Rng) -> &'static Country {
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
pub(super) fn name_pool(
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
pub(super) fn postcode(rng: &mut ChaCha8Rng, country: &str) -> String {
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
pub(super) fn email_word(s: &str) -> String {
    Normalizer::Ascii
        .apply(s)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// An address unique to the person: the code is unique and the name parts
/// hold no digits, so the trailing digits identify the person.
pub(super) fn email_address(rng: &mut ChaCha8Rng, first: &str, last: &str, code: u64) -> String {
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
