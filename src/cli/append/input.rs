//! A JSON-lines file of events, read and validated in full before anything
//! is sent, so a bad line never leaves half a file in the ledger.
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::AppendError;
use crate::ingest::event_json::parse_line;
use crate::ledger::event::Event;
use crate::limits;

/// Longest input line, bytes: the largest leaf with room for JSON escaping.
pub const LINE_BYTES_MAX: usize = 2 * limits::LEAF_BYTES_MAX;

/// Largest input file, bytes. The whole file is held in memory until every
/// line has been validated; beyond this, split the file.
pub const FILE_BYTES_MAX: usize = 256 * 1024 * 1024;

const _: () = assert!(LINE_BYTES_MAX < FILE_BYTES_MAX);

/// Reads and validates every line of `path` (`-` is stdin).
pub fn read_file(path: &Path, now_unix_nanos: i64) -> Result<Vec<Event>, AppendError> {
    let read_error = |source| AppendError::Read {
        path: path.to_path_buf(),
        source,
    };
    let events = if path == Path::new("-") {
        parse_lines(
            BufReader::new(std::io::stdin().lock()),
            path,
            now_unix_nanos,
        )?
    } else {
        let file = std::fs::File::open(path).map_err(read_error)?;
        parse_lines(BufReader::new(file), path, now_unix_nanos)?
    };
    if events.is_empty() {
        return Err(AppendError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(events)
}

/// Parses JSON lines, skipping blank ones; line numbers start at 1.
pub fn parse_lines(
    mut reader: impl BufRead,
    path: &Path,
    now_unix_nanos: i64,
) -> Result<Vec<Event>, AppendError> {
    let mut events = Vec::new();
    let mut total_bytes = 0usize;
    let mut buf = Vec::new();
    for line in 1.. {
        buf.clear();
        let read = (&mut reader)
            .take(LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|source| AppendError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        if read == 0 {
            break;
        }
        total_bytes += read;
        if total_bytes > FILE_BYTES_MAX {
            return Err(AppendError::FileTooLarge {
                path: path.to_path_buf(),
                max: FILE_BYTES_MAX,
            });
        }
        if buf.len() > LINE_BYTES_MAX {
            return Err(AppendError::Line {
                line,
                reason: format!("longer than {LINE_BYTES_MAX} bytes"),
            });
        }
        let text = std::str::from_utf8(&buf).map_err(|_| AppendError::Line {
            line,
            reason: "not valid UTF-8".into(),
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let event = parse_line(text, now_unix_nanos)
            .map_err(|reason| AppendError::Line { line, reason })?;
        events.push(event);
    }
    Ok(events)
}
