//! RTSP users files.

use std::path::Path;

use super::error::UsersFileError;
use crate::rtsp::auth::User;

/// Reads an RTSP users file: `user:password` or htdigest `user:realm:md5`
/// lines; `#` comments and blank lines are skipped. The file must not be
/// readable by group or others: it holds secrets.
pub fn load_users_file(path: &Path) -> Result<Vec<User>, UsersFileError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| UsersFileError::Metadata {
        path: path.into(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(UsersFileError::OpenToOthers {
            path: path.into(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| UsersFileError::Read {
        path: path.into(),
        source,
    })?;
    let mut users = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        users.push(User::parse(line).map_err(|source| UsersFileError::Line {
            path: path.into(),
            line: i + 1,
            source,
        })?);
    }
    if users.is_empty() {
        return Err(UsersFileError::Empty { path: path.into() });
    }
    Ok(users)
}
