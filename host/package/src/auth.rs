//! Registry credentials, from the environment or the docker config file;
//! never from a plugin, never logged.

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;

/// Username for every registry (with [`PASSWORD_ENV`]).
pub const USERNAME_ENV: &str = "TRIGGERFISH_REGISTRY_USERNAME";
/// Password or token for every registry (with [`USERNAME_ENV`]).
pub const PASSWORD_ENV: &str = "TRIGGERFISH_REGISTRY_PASSWORD";
/// Largest docker config file read.
pub const MAX_DOCKER_CONFIG_BYTES: u64 = 1024 * 1024;

/// Credentials for `registry` (`host[:port]`): the two environment variables
/// when set, else its entry in `$DOCKER_CONFIG/config.json` (or
/// `~/.docker/config.json`), else anonymous.
pub fn for_registry(registry: &str) -> Result<RegistryAuth, String> {
    match (std::env::var(USERNAME_ENV), std::env::var(PASSWORD_ENV)) {
        (Ok(user), Ok(pass)) => return Ok(RegistryAuth::Basic(user, pass)),
        (Ok(_), Err(_)) | (Err(_), Ok(_)) => {
            return Err(format!(
                "set both {USERNAME_ENV} and {PASSWORD_ENV}, or neither"
            ))
        }
        _ => {}
    }
    let path = match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => std::path::PathBuf::from(dir).join("config.json"),
        None => match std::env::var_os("HOME") {
            Some(home) => std::path::PathBuf::from(home).join(".docker/config.json"),
            None => return Ok(RegistryAuth::Anonymous),
        },
    };
    let text = match std::fs::metadata(&path) {
        Ok(m) if m.len() > MAX_DOCKER_CONFIG_BYTES => {
            return Err(format!(
                "{} is larger than {MAX_DOCKER_CONFIG_BYTES} bytes",
                path.display()
            ))
        }
        Ok(_) => std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?,
        Err(_) => return Ok(RegistryAuth::Anonymous),
    };
    from_docker_config(&text, registry).map_err(|e| format!("{}: {e}", path.display()))
}

/// The entry for `registry` in a docker config file's `auths`.
fn from_docker_config(text: &str, registry: &str) -> Result<RegistryAuth, String> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Some(auths) = doc.get("auths").and_then(|a| a.as_object()) else {
        return Ok(RegistryAuth::Anonymous);
    };
    let entry = auths.iter().find(|(k, _)| {
        let k = k
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        k.split('/').next() == Some(registry)
    });
    let Some((key, entry)) = entry else {
        return Ok(RegistryAuth::Anonymous);
    };
    if let Some(encoded) = entry.get("auth").and_then(|a| a.as_str()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| format!("auths.\"{key}\".auth is not base64 of user:password"))?;
        let (user, pass) = decoded
            .split_once(':')
            .ok_or_else(|| format!("auths.\"{key}\".auth is not base64 of user:password"))?;
        return Ok(RegistryAuth::Basic(user.to_owned(), pass.to_owned()));
    }
    match (
        entry.get("username").and_then(|u| u.as_str()),
        entry.get("password").and_then(|p| p.as_str()),
    ) {
        (Some(u), Some(p)) => Ok(RegistryAuth::Basic(u.to_owned(), p.to_owned())),
        _ => Ok(RegistryAuth::Anonymous),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_entries_are_found_by_registry() {
        let text = r#"{"auths":{"https://reg.example.com/v1/":{"auth":"dXNlcjpwYXNz"},
                      "127.0.0.1:5000":{"username":"a","password":"b"}}}"#;
        assert!(matches!(from_docker_config(text, "reg.example.com"),
            Ok(RegistryAuth::Basic(u, p)) if u == "user" && p == "pass"));
        assert!(matches!(from_docker_config(text, "127.0.0.1:5000"),
            Ok(RegistryAuth::Basic(u, p)) if u == "a" && p == "b"));
        assert!(matches!(
            from_docker_config(text, "other.example.com"),
            Ok(RegistryAuth::Anonymous)
        ));
        let bad = r#"{"auths":{"r.example.com":{"auth":"!!"}}}"#;
        let e = from_docker_config(bad, "r.example.com").unwrap_err();
        assert!(e.contains("auths.\"r.example.com\".auth"), "{e}");
        assert!(!e.contains("!!"), "the secret is not echoed: {e}");
    }
}
