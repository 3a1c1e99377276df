//! Capability policy: what one plugin may reach. Everything not granted is denied.

use crate::config::Grants;

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

    /// Whether any entity at all is granted.
    pub fn any_entity(&self) -> bool {
        !self.grants.entities.is_empty()
    }

    /// The outbound origins granted, as configured.
    pub fn outbound_hosts(&self) -> &[String] {
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
    fn entity_wildcard() {
        let g = Granter::new(Grants {
            entities: vec!["*".into()],
            ..Grants::default()
        });
        assert!(g.entity("Anything").is_ok());
        assert!(granter().entity("Customer").is_ok());
        assert!(granter().entity("Orders").is_err());
    }
}
