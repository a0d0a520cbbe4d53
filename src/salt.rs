//! The secret mixed into user ids (PROTOCOL.md §10): an id is a hash of the salt and the client's
//! address, so whoever knows the salt can walk the address space and turn ids back into
//! addresses. There is no built-in salt. One configured (`--salt`, `MPPD_SALT`) wins, for
//! moving an installation with its ids; otherwise a random one is made from the operating
//! system's generator at first start and kept in the data directory (`salt`, mode 0600), or,
//! without a data directory, made anew for each process (ids then change on restart).
//!
//! This is the shell's business: the core only receives the salt in its configuration.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The file name inside the data directory.
pub const SALT_FILE: &str = "salt";

/// Random bytes in a generated salt (written as hex).
const SALT_BYTES: usize = 32;

/// Where the salt in use came from. Shown at startup and by `--print-config`; never the salt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaltSource {
    /// `--salt` or `MPPD_SALT` (or a configuration set by a program).
    Configured,
    /// Read from this file, made at an earlier start.
    File(PathBuf),
    /// Made now and written to this file.
    Created(PathBuf),
    /// Would be made in this file at the first start (`--print-config` only).
    ToCreate(PathBuf),
    /// Random for this process: no data directory.
    PerProcess,
}

impl fmt::Display for SaltSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaltSource::Configured => write!(f, "configured (--salt or MPPD_SALT)"),
            SaltSource::File(path) => write!(f, "{}", path.display()),
            SaltSource::Created(path) => write!(f, "{} (created now)", path.display()),
            SaltSource::ToCreate(path) => write!(f, "{} (created at the first start)", path.display()),
            SaltSource::PerProcess => {
                write!(f, "random for this process (no data directory: user ids change on restart)")
            }
        }
    }
}

/// Where the salt would come from, without creating anything (for `--print-config`).
pub fn describe(configured: &str, data_dir: Option<&Path>) -> SaltSource {
    match data_dir {
        _ if !configured.is_empty() => SaltSource::Configured,
        Some(dir) if dir.join(SALT_FILE).exists() => SaltSource::File(dir.join(SALT_FILE)),
        Some(dir) => SaltSource::ToCreate(dir.join(SALT_FILE)),
        None => SaltSource::PerProcess,
    }
}

/// The salt to use and where it came from: `configured` when not empty, else the data
/// directory's salt file (created with a random salt if missing), else a random salt. A salt
/// file that exists but cannot be read, or is empty, is an error: making a new one would
/// silently change every user's id.
pub fn resolve(configured: &str, data_dir: Option<&Path>) -> io::Result<(String, SaltSource)> {
    if !configured.is_empty() {
        return Ok((configured.to_string(), SaltSource::Configured));
    }
    let Some(dir) = data_dir else {
        return Ok((random_salt()?, SaltSource::PerProcess));
    };
    let path = dir.join(SALT_FILE);
    match fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok((text.trim().to_string(), SaltSource::File(path))),
        Ok(_) => {
            return Err(io::Error::other(format!(
                "the salt file {} is empty; remove it to make a new one (all user ids change)",
                path.display()
            )));
        }
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(io::Error::new(e.kind(), format!("cannot read the salt file {}: {e}", path.display())));
        }
        Err(_) => {}
    }
    let salt = random_salt()?;
    write_new(dir, &salt)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot create the salt file {}: {e}", path.display())))?;
    Ok((salt, SaltSource::Created(path)))
}

/// Writes `salt` to a file only the owner can read, whole or not at all (a crash must not leave
/// an empty or cut salt, which would refuse every start or change every id).
fn write_new(dir: &Path, salt: &str) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    crate::store::write_atomically(dir, SALT_FILE, format!("{salt}\n").as_bytes(), 0o600)
}

/// `N` bytes from the operating system's generator.
pub fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes))?;
    Ok(bytes)
}

/// [`SALT_BYTES`] bytes from the operating system's generator, as hex.
fn random_salt() -> io::Result<String> {
    let bytes = random_bytes::<SALT_BYTES>()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read /dev/urandom for the id salt: {e}")))?;
    Ok(crate::core::to_hex(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mppd-salt-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_salt_is_created_once_private_and_then_reused() {
        let dir = temp_dir("create");
        assert_eq!(describe("", Some(&dir)), SaltSource::ToCreate(dir.join(SALT_FILE)));
        let (salt, source) = resolve("", Some(&dir)).unwrap();
        assert_eq!(source, SaltSource::Created(dir.join(SALT_FILE)));
        assert_eq!(salt.len(), 2 * SALT_BYTES);
        let mode = fs::metadata(dir.join(SALT_FILE)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(resolve("", Some(&dir)).unwrap(), (salt.clone(), SaltSource::File(dir.join(SALT_FILE))));
        assert_eq!(describe("", Some(&dir)), SaltSource::File(dir.join(SALT_FILE)));
        // A configured salt wins over the file.
        assert_eq!(resolve("mine", Some(&dir)).unwrap(), ("mine".to_string(), SaltSource::Configured));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_a_data_directory_each_process_gets_its_own() {
        let (a, source) = resolve("", None).unwrap();
        let (b, _) = resolve("", None).unwrap();
        assert_eq!(source, SaltSource::PerProcess);
        assert_ne!(a, b);
    }

    #[test]
    fn an_empty_salt_file_is_an_error_not_a_new_salt() {
        let dir = temp_dir("empty");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(SALT_FILE), "\n").unwrap();
        assert!(resolve("", Some(&dir)).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
