//! Who may connect: the `authorized_keys` file in OpenSSH's format, read again for every new
//! connection so that adding or revoking an admin needs no restart.
//!
//! Each line is one admin. Their name is the key's comment unless the config maps the key's
//! fingerprint to a name; `keytop-role="read-only"` before the key makes a read-only admin. A bad
//! line is skipped with a warning rather than locking every admin out.

use std::collections::BTreeMap;
use std::path::Path;

use russh::keys::ssh_key::authorized_keys::Entry;
use russh::keys::ssh_key::public::KeyData;
use russh::keys::{HashAlg, PublicKey};

/// The only option keytop reads from a line.
const ROLE_OPTION: &str = "keytop-role";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    /// Today's `--read-only`: every mutation left out of the keymap.
    ReadOnly,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ReadOnly => "read-only",
        }
    }
}

/// An authenticated admin: the name recorded as the actor of their changes, the fingerprint of
/// their key (which, unlike the name, cannot be edited) and their role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub name: String,
    pub fingerprint: String,
    pub role: Role,
}

#[derive(Debug, Default)]
pub struct AdminKeys {
    admins: Vec<(KeyData, Admin)>,
}

impl AdminKeys {
    /// Reads the file. Lines that cannot be used come back as warnings (`path:line: why`).
    pub fn load(path: &Path, names: &BTreeMap<String, String>) -> std::io::Result<(AdminKeys, Vec<String>)> {
        let text = std::fs::read_to_string(path)?;
        let (keys, problems) = AdminKeys::parse(&text, names);
        let warnings = problems.into_iter().map(|(line, why)| format!("{}:{line}: skipped: {why}", path.display()));
        Ok((keys, warnings.collect()))
    }

    /// Parses the text of an authorized_keys file; `names` maps `SHA256:…` fingerprints to admin
    /// names. Returns the admins and, for each unusable line, its number and why.
    pub fn parse(text: &str, names: &BTreeMap<String, String>) -> (AdminKeys, Vec<(usize, String)>) {
        let mut admins = Vec::new();
        let mut problems = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match admin_of_line(line, names) {
                Ok(admin) => admins.push(admin),
                Err(why) => problems.push((index + 1, why)),
            }
        }
        (AdminKeys { admins }, problems)
    }

    pub fn is_empty(&self) -> bool {
        self.admins.is_empty()
    }

    pub fn len(&self) -> usize {
        self.admins.len()
    }

    /// Whether `admin` may still connect as they did: their key is listed, with the same role.
    pub fn allows(&self, admin: &Admin) -> bool {
        self.admins.iter().any(|(_, listed)| listed.fingerprint == admin.fingerprint && listed.role == admin.role)
    }

    /// The admin whose key this is. Compares the key material only: an offered key has no comment.
    pub fn find(&self, key: &PublicKey) -> Option<&Admin> {
        self.admins.iter().find(|(data, _)| data == key.key_data()).map(|(_, admin)| admin)
    }
}

fn admin_of_line(line: &str, names: &BTreeMap<String, String>) -> Result<(KeyData, Admin), String> {
    let entry: Entry = line.parse().map_err(|error| format!("not an authorized_keys line: {error}"))?;
    let mut role = Role::Admin;
    for option in entry.config_opts().iter() {
        role = match option.split_once('=') {
            Some((ROLE_OPTION, "\"admin\"")) => Role::Admin,
            Some((ROLE_OPTION, "\"read-only\"")) => Role::ReadOnly,
            Some((ROLE_OPTION, value)) => {
                return Err(format!("{ROLE_OPTION} is {value}; it must be \"admin\" or \"read-only\""));
            }
            // An option keytop does not enforce (from="…", command="…") must not quietly grant
            // more than its writer meant.
            _ => return Err(format!("unsupported option {option}; only {ROLE_OPTION}=\"…\" is understood")),
        };
    }
    let key = entry.public_key();
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    let comment = key.comment().as_str_lossy();
    let comment = comment.trim();
    let name = match names.get(&fingerprint) {
        Some(name) => name.clone(),
        None if comment.is_empty() => {
            return Err(format!("key {fingerprint} has no comment to name its admin and no name in [serve.admins]"));
        }
        None => comment.to_string(),
    };
    let name = crate::domain::validate::name("admin name", &name, 100).map_err(|error| error.to_string())?;
    Ok((key.key_data().clone(), Admin { name, fingerprint, role }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMNhvMPzDFLXCeKN7OOProoW4V4Sd5MOeClj5LVctqMs alice@laptop";
    const BOB: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGohN5pnVvdE3OfTH5dpwuX+OP+wnF3HIUpVHEFOgiOJ bob";

    fn key_of(line: &str) -> PublicKey {
        PublicKey::from_openssh(line).unwrap()
    }

    #[test]
    fn the_comment_names_the_admin_and_the_role_option_is_read() {
        let text = format!("# admins\n{ALICE}\n\nkeytop-role=\"read-only\" {BOB}\n");
        let (keys, problems) = AdminKeys::parse(&text, &BTreeMap::new());
        assert!(problems.is_empty(), "{problems:?}");
        let alice = keys.find(&key_of(ALICE)).unwrap();
        assert_eq!((alice.name.as_str(), alice.role), ("alice@laptop", Role::Admin));
        assert!(alice.fingerprint.starts_with("SHA256:"));
        assert_eq!(keys.find(&key_of(BOB)).unwrap().role, Role::ReadOnly);
    }

    #[test]
    fn an_offered_key_without_its_comment_still_matches() {
        let (keys, _) = AdminKeys::parse(ALICE, &BTreeMap::new());
        let bare = ALICE.rsplit_once(' ').unwrap().0;
        assert_eq!(keys.find(&key_of(bare)).unwrap().name, "alice@laptop");
    }

    #[test]
    fn the_config_can_rename_a_key_by_fingerprint() {
        let fingerprint = key_of(ALICE).fingerprint(HashAlg::Sha256).to_string();
        let names = BTreeMap::from([(fingerprint, "Alice Martin".to_string())]);
        let (keys, _) = AdminKeys::parse(ALICE, &names);
        assert_eq!(keys.find(&key_of(ALICE)).unwrap().name, "Alice Martin");
    }

    #[test]
    fn bad_lines_are_skipped_with_their_number_and_the_others_kept() {
        let text = format!(
            "garbage here\nkeytop-role=\"root\" {BOB}\ncommand=\"ls\" {BOB}\n{ALICE}\n{}\n",
            BOB.strip_suffix(" bob").unwrap()
        );
        let (keys, problems) = AdminKeys::parse(&text, &BTreeMap::new());
        assert_eq!(keys.len(), 1);
        assert!(keys.find(&key_of(ALICE)).is_some());
        let lines: Vec<usize> = problems.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [1, 2, 3, 5]);
        assert!(problems[1].1.contains("\"root\""), "{problems:?}");
        assert!(problems[2].1.contains("unsupported option"), "{problems:?}");
        assert!(problems[3].1.contains("no comment"), "{problems:?}");
    }

    #[test]
    fn an_admin_is_allowed_while_their_key_is_listed_with_the_same_role() {
        let (before, _) = AdminKeys::parse(&format!("{ALICE}\n{BOB}"), &BTreeMap::new());
        let alice = before.find(&key_of(ALICE)).unwrap().clone();
        let bob = before.find(&key_of(BOB)).unwrap().clone();
        let (after, _) = AdminKeys::parse(&format!("keytop-role=\"read-only\" {BOB}"), &BTreeMap::new());
        assert!(before.allows(&alice) && before.allows(&bob));
        assert!(!after.allows(&alice), "revoked");
        assert!(!after.allows(&bob), "demoted to read-only");
    }

    #[test]
    fn an_unknown_key_is_not_found() {
        let (keys, _) = AdminKeys::parse(ALICE, &BTreeMap::new());
        assert!(keys.find(&key_of(BOB)).is_none());
    }
}
