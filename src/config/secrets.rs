//! Values that must never be printed: passwords, secret keys and the
//! connection strings that carry them.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

const REDACTED: &str = "<redacted>";

/// A string that must never be printed: `Debug` and `Serialize` redact it,
/// and secrecy's `SecretString` zeroes it when dropped.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Default for Secret {
    fn default() -> Self {
        Self::new(String::new())
    }
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_empty() { "\"\"" } else { REDACTED })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.is_empty() { "" } else { REDACTED })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient_string(d).map(Secret::new)
    }
}

/// Environment values that look like numbers (`STRATA_S3__SECRET_ACCESS_KEY=1234`)
/// arrive as numbers; a string field takes them as their text.
pub(super) fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Str(String),
        Int(i128),
        Float(f64),
        Bool(bool),
    }
    // The untagged error would echo the value, which may be a secret.
    Scalar::deserialize(d)
        .map(|v| match v {
            Scalar::Str(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        })
        .map_err(|_| serde::de::Error::custom("expected a string"))
}

/// Debug, Display and Serialize all show a connection string's
/// `redacted()` form: there is no way to print the secret by accident.
macro_rules! printed_redacted {
    ($type:ty) => {
        impl fmt::Debug for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.redacted())
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.redacted())
            }
        }

        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.redacted())
            }
        }
    };
}

/// A connection URL that may carry a password. Printing shows it with the
/// password replaced; [`SecretUrl::expose`] gives the real one to drivers.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(Url);

impl SecretUrl {
    pub fn parse(s: &str) -> Result<Self, url::ParseError> {
        Url::parse(s).map(Self)
    }
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
    pub fn url(&self) -> &Url {
        &self.0
    }
    /// The URL with its password replaced, safe to print.
    pub fn redacted(&self) -> String {
        let mut url = self.0.clone();
        if url.password().is_some() {
            // set_password only fails on URLs that cannot have one.
            let _ = url.set_password(Some(REDACTED));
        }
        // Query parameters may carry credentials too (e.g. `password=`).
        if url.query().is_some() {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if is_sensitive_option(&k) {
                        REDACTED.to_string()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        url.to_string()
    }
    /// `host:port` for messages about reaching the server.
    pub fn address(&self) -> String {
        let host = self.0.host_str().unwrap_or("?");
        match self.0.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        }
    }
}

printed_redacted!(SecretUrl);

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = lenient_string(d)?;
        // The parse error never contains the input, so no secret leaks here.
        SecretUrl::parse(&raw)
            .map_err(|e| serde::de::Error::custom(format!("not a valid URL: {e}")))
    }
}

/// A MongoDB connection string: `mongodb://u:p@h1:27017,h2:27017/?replicaSet=rs0`
/// or `mongodb+srv://…`. A seed list of several hosts is not a URL the
/// `url` crate accepts, so this keeps the text and validates it with the
/// driver's own parser. Printing redacts the password and sensitive options.
#[derive(Clone, PartialEq, Eq)]
pub struct MongoUrl(String);

impl MongoUrl {
    /// A compiled-in default: no input reaches it.
    pub(super) fn compiled_in(s: &str) -> Self {
        Self(s.to_string())
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match mongodb::options::ConnectionString::parse(s) {
            Ok(_) => Ok(Self(s.to_string())),
            Err(e) => {
                let mut message = e.kind.to_string();
                if let Some(password) = Self::password_of(s).filter(|p| !p.is_empty()) {
                    message = message.replace(password, REDACTED);
                }
                Err(format!("not a valid MongoDB connection string: {message}"))
            }
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The `user:password@` part's password, if any.
    fn password_of(s: &str) -> Option<&str> {
        let rest = s.split_once("://")?.1;
        let authority = rest.split(['/', '?']).next()?;
        let (userinfo, _) = authority.rsplit_once('@')?;
        userinfo.split_once(':').map(|(_, password)| password)
    }

    pub fn redacted(&self) -> String {
        let mut text = self.0.clone();
        if let Some(password) = Self::password_of(&self.0).filter(|p| !p.is_empty()) {
            let (scheme, rest) = text.split_once("://").unwrap_or(("", &self.0));
            let rest = rest.replacen(&format!(":{password}@"), &format!(":{REDACTED}@"), 1);
            text = format!("{scheme}://{rest}");
        }
        match text.split_once('?') {
            Some((base, query)) => {
                let options: Vec<String> = query
                    .split('&')
                    .map(|pair| match pair.split_once('=') {
                        Some((key, _)) if is_sensitive_option(key) => format!("{key}={REDACTED}"),
                        _ => pair.to_string(),
                    })
                    .collect();
                format!("{base}?{}", options.join("&"))
            }
            None => text,
        }
    }

    /// The hosts for messages: `h1:27017,h2:27017`, or the SRV name.
    pub fn address(&self) -> String {
        use mongodb::options::{ConnectionString, HostInfo};
        match ConnectionString::parse(&self.0).map(|c| c.host_info) {
            Ok(HostInfo::HostIdentifiers(hosts)) => hosts
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            Ok(HostInfo::DnsRecord(name)) => name,
            Ok(_) | Err(_) => "?".into(),
        }
    }
}

pub(super) fn is_sensitive_option(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "key",
        "authmechanismproperties",
    ]
    .iter()
    .any(|s| key.contains(s))
}

printed_redacted!(MongoUrl);

impl<'de> Deserialize<'de> for MongoUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = lenient_string(d)?;
        MongoUrl::parse(&raw).map_err(serde::de::Error::custom)
    }
}
