//! Loading the master key: from `KEYTOP_MASTER_KEY`, or a file created with mode 0600 on first use.

use std::io::Write;
use std::path::Path;

use crate::crypto::MasterKey;

/// Where the master key comes from.
pub enum MasterKeyOrigin<'a> {
    /// The base64 text itself (from `KEYTOP_MASTER_KEY`).
    Env(&'a str),
    /// A file; created with a fresh key when `create_if_missing` and absent.
    File { path: &'a Path, create_if_missing: bool },
}

/// Loads the master key, or explains why it cannot. Never includes the key in a message.
pub fn load(origin: MasterKeyOrigin<'_>) -> Result<MasterKey, String> {
    match origin {
        MasterKeyOrigin::Env(text) => {
            MasterKey::from_base64(text).map_err(|error| format!("KEYTOP_MASTER_KEY is not usable: {error}"))
        }
        MasterKeyOrigin::File { path, create_if_missing } => load_file(path, create_if_missing),
    }
}

fn load_file(path: &Path, create_if_missing: bool) -> Result<MasterKey, String> {
    let shown = path.display();
    match std::fs::read_to_string(path) {
        Ok(text) => {
            check_permissions(path)?;
            MasterKey::from_base64(&text).map_err(|error| format!("the master key file {shown} is not usable: {error}"))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && create_if_missing => create(path),
        Err(error) => Err(format!(
            "cannot read the master key file {shown}: {error}; pass --master-key-file or set KEYTOP_MASTER_KEY"
        )),
    }
}

/// A key file readable by group or others is refused: anyone who can read it can reveal keys.
#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        std::fs::metadata(path).map_err(|e| format!("cannot inspect {}: {e}", path.display()))?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "the master key file {} is readable by others (mode {:o}); fix it with: chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path) -> Result<(), String> {
    Ok(())
}

fn create(path: &Path) -> Result<MasterKey, String> {
    let fail = |error: std::io::Error| format!("cannot create the master key file {}: {error}", path.display());
    if let Some(dir) = path.parent() {
        crate::paths::create_private_dir_all(dir).map_err(fail)?;
    }
    let (key, text) = MasterKey::generate();
    match crate::paths::private_file_options().write(true).create_new(true).open(path) {
        Ok(mut file) => {
            file.write_all(format!("{text}\n").as_bytes()).and_then(|()| file.sync_all()).map_err(fail)?;
            tracing::info!(path = %path.display(), "created a new master key file");
            Ok(key)
        }
        // Another process created it first: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => load_file(path, false),
        Err(error) => Err(fail(error)),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn creates_a_private_file_once_and_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let id = uuid::Uuid::new_v4();
        let first = load(MasterKeyOrigin::File { path: &path, create_if_missing: true }).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = first.seal(id, "sk-x");
        let second = load(MasterKeyOrigin::File { path: &path, create_if_missing: true }).unwrap();
        assert_eq!(second.open(id, &sealed).unwrap(), "sk-x");
    }

    #[test]
    fn refuses_a_readable_file_and_says_how_to_fix_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let (_, text) = MasterKey::generate();
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = load(MasterKeyOrigin::File { path: &path, create_if_missing: false }).unwrap_err();
        assert!(error.contains("chmod 600"), "{error}");
    }

    #[test]
    fn a_missing_file_is_explained_when_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let error =
            load(MasterKeyOrigin::File { path: &dir.path().join("none"), create_if_missing: false }).unwrap_err();
        assert!(error.contains("KEYTOP_MASTER_KEY"), "{error}");
    }
}
