//! Database URLs as shown to people: never with a password.

/// Replaces the password of a URL such as `postgres://user:secret@host/db` with `***`.
pub fn redact_url(url: &str) -> String {
    // A password may also come as a query parameter (`?password=…`, which the driver accepts).
    if let Some((base, query)) = url.split_once('?') {
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=***"),
                _ => pair.to_string(),
            })
            .collect();
        return format!("{}?{}", redact_url(base), query.join("&"));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((credentials, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn hides_passwords_only() {
        assert_eq!(redact_url("postgres://bob:s3cr@t@db:5432/keys"), "postgres://bob:***@db:5432/keys");
        assert_eq!(redact_url("postgres://bob@db/keys"), "postgres://bob@db/keys");
        assert_eq!(redact_url("sqlite:///tmp/k.db"), "sqlite:///tmp/k.db");
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(
            redact_url("postgres://bob@db/keys?sslmode=require&password=s3cr&x=1"),
            "postgres://bob@db/keys?sslmode=require&password=***&x=1"
        );
        assert_eq!(redact_url("postgres://bob:pw@db/keys?password=s3cr"), "postgres://bob:***@db/keys?password=***");
    }
}
