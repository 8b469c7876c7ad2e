//! The server's host key: generated once (ed25519, mode 0600) and kept, so that clients that
//! trusted it on first connection keep trusting it.

use std::io::Write as _;
use std::path::Path;

use rand::RngCore as _;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey};

/// Loads the host key at `path`, creating it first if there is none. Returns the key and
/// whether it was created.
pub fn load_or_create(path: &Path) -> anyhow::Result<(PrivateKey, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            refuse_if_readable_by_others(path)?;
            let key = PrivateKey::from_openssh(text.trim_end())
                .map_err(|error| anyhow::anyhow!("the host key {} is not usable: {error}", path.display()))?;
            Ok((key, false))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok((create(path)?, true)),
        Err(error) => Err(anyhow::anyhow!("cannot read the host key {}: {error}", path.display())),
    }
}

/// `SHA256:…`, as `ssh-keygen -lf` and the client's first-connection prompt print it.
pub fn fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}

fn create(path: &Path) -> anyhow::Result<PrivateKey> {
    let context = |error: std::io::Error| anyhow::anyhow!("cannot create the host key {}: {error}", path.display());
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    let text =
        key.to_openssh(LineEnding::LF).map_err(|error| anyhow::anyhow!("cannot encode the host key: {error}"))?;
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(context)?;
    // Written aside and renamed, so a crash never leaves a half-written key behind; the temporary
    // file is created 0600, so the key is never readable by others, not even for a moment.
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(context)?;
    file.write_all(text.as_bytes()).and_then(|()| file.as_file().sync_all()).map_err(context)?;
    file.persist_noclobber(path).map_err(|error| context(error.error))?;
    Ok(key)
}

#[cfg(unix)]
fn refuse_if_readable_by_others(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)?.permissions().mode();
    anyhow::ensure!(
        mode & 0o077 == 0,
        "the host key {} is readable by others (mode {:o}); fix it with: chmod 600 {}",
        path.display(),
        mode & 0o777,
        path.display()
    );
    Ok(())
}

#[cfg(not(unix))]
fn refuse_if_readable_by_others(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn created_once_private_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/ssh_host_ed25519_key");
        let (first, created) = load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let (again, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(fingerprint(&first), fingerprint(&again));
        assert!(fingerprint(&first).starts_with("SHA256:"));
    }

    #[test]
    fn a_key_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = load_or_create(&path).unwrap_err().to_string();
        assert!(error.contains("chmod 600"), "{error}");
    }
}
