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

/// The URL of another database on the same server: `url` with its database path replaced by
/// `name`, its query kept (`postgres://u@h:5432/postgres?sslmode=require` → `…/name?sslmode=require`).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..].find('/').map(|i| i + scheme_end).unwrap_or(base.len());
    format!("{}/{name}{query}", &base[..host_end])
}

#[cfg(test)]
mod tests {
    use super::{redact_url, with_database};

    #[test]
    fn another_database_keeps_the_server_and_the_query() {
        assert_eq!(with_database("postgres://u@h:5432/postgres", "t1"), "postgres://u@h:5432/t1");
        assert_eq!(with_database("postgres://u@h?sslmode=require", "t1"), "postgres://u@h/t1?sslmode=require");
    }

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
