//! Capability policy: what one plugin may reach. Everything not granted is denied.

use std::fmt;

/// What a plugin may use. Anything absent is denied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Teams channel names.
    pub teams: Vec<String>,
    /// Email recipient group names.
    pub email_groups: Vec<String>,
    /// Domains the plugin may email directly, lower-case, e.g. `example.com`.
    pub email_domains: Vec<String>,
    /// Entities the plugin may read; `"*"` for all.
    pub entities: Vec<String>,
    /// Writable entities the plugin may create and update items of (each
    /// must also list the plugin in its `writable_by`; no wildcard).
    pub entities_write: Vec<String>,
    /// Origins for `wasi:http`, parsed once when the settings are made.
    pub outbound_hosts: Vec<Origin>,
}

impl Grants {
    /// Each kind of grant by its config key, as text, in the order a
    /// packed manifest lists what it requests.
    pub fn kinds(&self) -> [(&'static str, Vec<String>); 6] {
        [
            ("teams", self.teams.clone()),
            ("email_groups", self.email_groups.clone()),
            ("email_domains", self.email_domains.clone()),
            ("entities", self.entities.clone()),
            ("entities_write", self.entities_write.clone()),
            (
                "outbound_hosts",
                self.outbound_hosts.iter().map(|o| o.to_string()).collect(),
            ),
        ]
    }
}

/// An allowed origin: scheme (or any), host, port (or the scheme's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: Option<String>,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// Parse `https://host[:port]`, `http://host[:port]` or `host[:port]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let expected = || {
            format!("'{text}' is not an origin (expected e.g. \"https://api.example.com\" or \"127.0.0.1:8080\")")
        };
        let (scheme, rest) = match text.split_once("://") {
            Some((s, r)) if s == "http" || s == "https" => (Some(s.to_owned()), r),
            Some(_) => return Err(expected()),
            None => (None, text),
        };
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(expected());
        }
        let parse_port = |p: &str| p.parse::<u16>().map_err(|_| expected());
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(expected)?;
            let port = match after {
                "" => None,
                p => Some(parse_port(p.strip_prefix(':').ok_or_else(expected)?)?),
            };
            (h, port)
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(parse_port(p)?)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(expected());
        }
        Ok(Self {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The host as an IP address, when it is one (`127.0.0.1`, `::1`).
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        self.host.parse().ok()
    }

    /// Does a request to `scheme://host:port` match?
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == scheme);
        let default_port = if scheme == "https" { 443 } else { 80 };
        let want_port = self.port.unwrap_or(match self.scheme.as_deref() {
            Some("https") => 443,
            Some(_) => 80,
            None => default_port,
        });
        scheme_ok
            && self.host
                == host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase()
            && want_port == port
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.scheme {
            write!(f, "{s}://")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

/// Decides, for one plugin, whether a capability target is granted.
#[derive(Debug, Clone, Default)]
pub struct Granter {
    grants: Grants,
}

/// A denial, with the text the guest receives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// An email recipient as the guest wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient<'a> {
    /// A named group from `[email.groups]`.
    Group(&'a str),
    /// A literal address.
    Address(&'a str),
}

impl<'a> Recipient<'a> {
    /// Classify a recipient: anything with an `@` is an address.
    pub fn classify(text: &'a str) -> Self {
        if text.contains('@') {
            Recipient::Address(text)
        } else {
            Recipient::Group(text)
        }
    }
}

impl Granter {
    /// The policy for these grants.
    pub fn new(grants: Grants) -> Self {
        Self { grants }
    }

    /// May post to this Teams channel?
    pub fn teams_channel(&self, channel: &str) -> Result<(), Denied> {
        if self.grants.teams.iter().any(|c| c == channel) {
            Ok(())
        } else {
            Err(Denied(format!(
                "teams channel '{channel}' is not granted to this plugin"
            )))
        }
    }

    /// May send email to this recipient?
    pub fn email_recipient(&self, recipient: &Recipient<'_>) -> Result<(), Denied> {
        match recipient {
            Recipient::Group(g) => {
                if self.grants.email_groups.iter().any(|x| x == g) {
                    Ok(())
                } else {
                    Err(Denied(format!(
                        "email group '{g}' is not granted to this plugin"
                    )))
                }
            }
            Recipient::Address(a) => {
                let domain = a
                    .rsplit_once('@')
                    .map(|(_, d)| d.trim_end_matches('>').to_ascii_lowercase())
                    .unwrap_or_default();
                if self.grants.email_domains.contains(&domain) {
                    Ok(())
                } else {
                    Err(Denied(format!(
                        "email address '{a}' is outside the domains granted to this plugin"
                    )))
                }
            }
        }
    }

    /// May read this entity?
    pub fn entity(&self, entity: &str) -> Result<(), Denied> {
        if self.entity_allowed(entity) {
            Ok(())
        } else {
            Err(Denied(format!(
                "entity '{entity}' is not granted to this plugin"
            )))
        }
    }

    /// Whether an entity is readable, without building an error.
    pub fn entity_allowed(&self, entity: &str) -> bool {
        self.grants.entities.iter().any(|e| e == "*" || e == entity)
    }

    /// May create and update items of this entity?
    pub fn entity_write(&self, entity: &str) -> Result<(), Denied> {
        if self.grants.entities_write.iter().any(|e| e == entity) {
            Ok(())
        } else {
            Err(Denied(format!(
                "writing entity '{entity}' is not granted to this plugin"
            )))
        }
    }

    /// Whether any entity at all is granted.
    pub fn any_entity(&self) -> bool {
        !self.grants.entities.is_empty()
    }

    /// The outbound origins granted.
    pub fn outbound_hosts(&self) -> &[Origin] {
        &self.grants.outbound_hosts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granter() -> Granter {
        Granter::new(Grants {
            teams: vec!["ops".into()],
            email_groups: vec!["data-owners".into()],
            email_domains: vec!["example.com".into()],
            entities: vec!["Customer".into()],
            entities_write: vec!["FollowUp".into()],
            outbound_hosts: vec![],
        })
    }

    #[test]
    fn nothing_is_granted_by_default() {
        let g = Granter::default();
        assert!(g.teams_channel("ops").is_err());
        assert!(g.email_recipient(&Recipient::Group("data-owners")).is_err());
        assert!(g.entity("Customer").is_err());
        assert!(!g.any_entity());
    }

    #[test]
    fn teams_denial_names_the_channel() {
        let g = granter();
        assert!(g.teams_channel("ops").is_ok());
        assert_eq!(
            g.teams_channel("sales").unwrap_err().0,
            "teams channel 'sales' is not granted to this plugin"
        );
    }

    #[test]
    fn email_groups_and_domains() {
        let g = granter();
        assert!(g
            .email_recipient(&Recipient::classify("data-owners"))
            .is_ok());
        assert!(g
            .email_recipient(&Recipient::classify("Ann <ann@Example.COM>"))
            .is_ok());
        assert_eq!(
            g.email_recipient(&Recipient::classify("x@evil.test"))
                .unwrap_err()
                .0,
            "email address 'x@evil.test' is outside the domains granted to this plugin"
        );
        assert_eq!(
            g.email_recipient(&Recipient::classify("finance"))
                .unwrap_err()
                .0,
            "email group 'finance' is not granted to this plugin"
        );
    }

    #[test]
    fn writes_are_granted_by_name_only() {
        assert!(granter().entity_write("FollowUp").is_ok());
        assert_eq!(
            granter().entity_write("Customer").unwrap_err().0,
            "writing entity 'Customer' is not granted to this plugin"
        );
        let g = Granter::new(Grants {
            entities: vec!["*".into()],
            ..Grants::default()
        });
        assert!(g.entity_write("FollowUp").is_err());
    }

    #[test]
    fn entity_wildcard() {
        let g = Granter::new(Grants {
            entities: vec!["*".into()],
            ..Grants::default()
        });
        assert!(g.entity("Anything").is_ok());
        assert!(granter().entity("Customer").is_ok());
        assert!(granter().entity("Orders").is_err());
    }

    #[test]
    fn origins_parse_match_and_display() {
        let o = Origin::parse("https://api.example.com").unwrap();
        assert!(o.allows("https", "API.example.com", 443));
        assert!(!o.allows("http", "api.example.com", 80));
        assert!(!o.allows("https", "api.example.com", 8443));
        assert!(Origin::parse("http://[::1]:9000")
            .unwrap()
            .allows("http", "[::1]", 9000));
        let o = Origin::parse("127.0.0.1:8080").unwrap();
        assert!(o.allows("http", "127.0.0.1", 8080));
        assert!(o.allows("https", "127.0.0.1", 8080));
        assert!(!o.allows("http", "127.0.0.1", 8081));
        assert_eq!(o.to_string(), "127.0.0.1:8080");
        assert_eq!(
            Origin::parse("http://[::1]:9000").unwrap().to_string(),
            "http://[::1]:9000"
        );
        assert!(Origin::parse("ftp://x").is_err());
        assert!(Origin::parse("https://x/path").is_err());
        assert!(Origin::parse("x:notaport").is_err());
        assert_eq!(
            Origin::parse("").unwrap_err(),
            "'' is not an origin (expected e.g. \"https://api.example.com\" or \"127.0.0.1:8080\")"
        );
    }
}
