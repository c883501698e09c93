//! Reading private key files (node signing keys, witness keys, TLS keys).
//!
//! A private key is only as private as its file: a key that group or others
//! may read can be copied by any local account, and one they may write can
//! be replaced. So a key file is refused unless its mode grants nothing to
//! group and others (as OpenSSH does), and the refusal names the fix.
//!
//! Symlinks are followed, and the mode checked is the target's: the file is
//! opened first and its metadata read from the open descriptor, so what is
//! checked is exactly what is read (no race with a rename in between).
//!
//! No error or log line from this module carries any byte of the file:
//! errors name the path, the mode, the size, never the contents.
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::limits::KEY_FILE_BYTES_MAX;

/// Mode bits a private key file must not have: any access by group or others.
const GROUP_OTHER_BITS: u32 = 0o077;

/// Why a private key file was not read. Each variant names the path; none
/// carries the file's contents.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read private key {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("private key {} is not a regular file", .path.display())]
    NotAFile { path: PathBuf },
    #[error(
        "private key {} has mode {mode:04o}: it must not be readable or writable by \
         group or others; run `chmod 600 {}`",
        .path.display(),
        .path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("private key {} is {len} bytes, more than the maximum of {max}", .path.display())]
    TooLarge { path: PathBuf, len: u64, max: usize },
    #[error("private key {} is not UTF-8 text", .path.display())]
    NotUtf8 { path: PathBuf },
}

/// Creates `path` with `mode` (failing with `AlreadyExists` if it exists,
/// even if created since any check) and writes `bytes`, synced. Keys and
/// certificates are written this way so nothing is ever overwritten.
pub fn create_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Reads a private key file as text, refusing one that group or others may
/// read or write, one that is not a regular file, and one larger than
/// [`KEY_FILE_BYTES_MAX`]. The text is returned as stored (callers trim).
pub fn read_private_key(path: &Path) -> Result<String, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    // O_NONBLOCK: opening a FIFO put in the key's place must not hang the
    // caller; regular files ignore the flag.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(KeyFileError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & GROUP_OTHER_BITS != 0 {
        return Err(KeyFileError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let too_large = |len: u64| KeyFileError::TooLarge {
        path: path.to_path_buf(),
        len,
        max: KEY_FILE_BYTES_MAX,
    };
    if meta.len() > KEY_FILE_BYTES_MAX as u64 {
        return Err(too_large(meta.len()));
    }
    let bytes = read_bounded(file).map_err(io)?;
    // The file may have grown since the metadata was read.
    if bytes.len() > KEY_FILE_BYTES_MAX {
        return Err(too_large(bytes.len() as u64));
    }
    // `FromUtf8Error` carries the bytes; drop it rather than pass it on.
    String::from_utf8(bytes).map_err(|_| KeyFileError::NotUtf8 {
        path: path.to_path_buf(),
    })
}

/// At most one byte past the limit, so a growing file cannot make the
/// reader allocate without bound.
fn read_bounded(file: File) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(KEY_FILE_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::Permissions;

    const SECRET: &str = "PRIVATE+KEY+node1+0123abcd+c2VjcmV0IGJ5dGVzIG5ldmVyIHByaW50ZWQ=";

    fn key_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn owner_only_key_is_read_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o600, 0o400] {
            let path = key_file(dir.path(), &format!("k{mode:o}"), SECRET, mode);
            assert_eq!(read_private_key(&path).unwrap(), SECRET);
        }
    }

    #[test]
    fn group_or_other_access_is_refused_with_mode_and_fix() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602, 0o610, 0o601, 0o666] {
            let path = key_file(dir.path(), &format!("k{mode:o}"), SECRET, mode);
            let err = read_private_key(&path).unwrap_err();
            assert!(
                matches!(err, KeyFileError::Permissions { mode: m, .. } if m == mode),
                "{err:?}"
            );
            let text = err.to_string();
            assert!(text.contains(&format!("{mode:04o}")), "{text}");
            assert!(
                text.contains(&format!("chmod 600 {}", path.display())),
                "{text}"
            );
            assert!(!text.contains("c2VjcmV0"), "error leaks the key: {text}");
        }
    }

    #[test]
    fn symlink_is_followed_and_its_target_mode_checked() {
        let dir = tempfile::tempdir().unwrap();
        let open = key_file(dir.path(), "open", SECRET, 0o644);
        let private = key_file(dir.path(), "private", SECRET, 0o600);
        let to_open = dir.path().join("to-open");
        let to_private = dir.path().join("to-private");
        std::os::unix::fs::symlink(&open, &to_open).unwrap();
        std::os::unix::fs::symlink(&private, &to_private).unwrap();
        assert!(matches!(
            read_private_key(&to_open),
            Err(KeyFileError::Permissions { mode: 0o644, .. })
        ));
        assert_eq!(read_private_key(&to_private).unwrap(), SECRET);
    }

    #[test]
    fn oversized_key_is_refused_without_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let text = "A".repeat(KEY_FILE_BYTES_MAX + 1);
        let path = key_file(dir.path(), "big", &text, 0o600);
        let err = read_private_key(&path).unwrap_err();
        assert!(matches!(err, KeyFileError::TooLarge { len, .. } if len == text.len() as u64));
        assert!(!err.to_string().contains("AAAA"));
        let exact = key_file(dir.path(), "exact", &text[1..], 0o600);
        assert_eq!(read_private_key(&exact).unwrap().len(), KEY_FILE_BYTES_MAX);
    }

    #[test]
    fn non_utf8_key_is_refused_without_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("binary");
        std::fs::write(&path, [0x41, 0xff, 0xfe, 0x42]).unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
        let err = read_private_key(&path).unwrap_err();
        assert!(matches!(err, KeyFileError::NotUtf8 { .. }), "{err:?}");
        assert!(!format!("{err:?}").contains("255"), "{err:?}");
    }

    #[test]
    fn directory_and_fifo_are_not_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, Permissions::from_mode(0o700)).unwrap();
        assert!(matches!(
            read_private_key(&sub),
            Err(KeyFileError::NotAFile { .. })
        ));
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        // Would block forever at open without O_NONBLOCK.
        assert!(matches!(
            read_private_key(&fifo),
            Err(KeyFileError::NotAFile { .. })
        ));
    }

    #[test]
    fn missing_key_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent");
        let err = read_private_key(&path).unwrap_err();
        assert!(matches!(err, KeyFileError::Io { .. }));
        assert!(err.to_string().contains(&path.display().to_string()));
    }
}
