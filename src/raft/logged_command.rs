//! A command as a Raft entry carries it: the command, and its JSON once it
//! has been written.
//!
//! An entry is written as JSON to the node's own log and, on the leader,
//! again into every follower's `AppendEntries` message; a follower reads it
//! from the message and writes it to its log. Writing a batch of events as
//! JSON was 9% of a leader's CPU with 100 events per request, each entry
//! written three times. The JSON of a command never changes, so it is
//! written once and kept (a follower keeps what it read), and every later
//! write copies it. The bytes on disk and on the wire are the same as
//! before: the kept JSON is exactly what writing the command produces.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use super::Command;

/// A [`Command`] in the Raft log, with its JSON kept once written; clones
/// share both.
#[derive(Clone)]
pub struct LoggedCommand {
    command: Command,
    json: Arc<OnceLock<Box<RawValue>>>,
}

impl LoggedCommand {
    pub fn new(command: Command) -> Self {
        Self {
            command,
            json: Arc::default(),
        }
    }

    pub fn command(&self) -> &Command {
        &self.command
    }

    pub fn into_command(self) -> Command {
        self.command
    }

    /// The command's JSON, written on first use.
    fn json(&self) -> Result<&RawValue, serde_json::Error> {
        if let Some(json) = self.json.get() {
            return Ok(json);
        }
        let json = serde_json::value::to_raw_value(&self.command)?;
        Ok(self.json.get_or_init(|| json))
    }
}

impl From<Command> for LoggedCommand {
    fn from(command: Command) -> Self {
        Self::new(command)
    }
}

impl fmt::Debug for LoggedCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.command.fmt(f)
    }
}

impl fmt::Display for LoggedCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.command.fmt(f)
    }
}

impl PartialEq for LoggedCommand {
    fn eq(&self, other: &Self) -> bool {
        self.command == other.command
    }
}

/// JSON only: the kept bytes are JSON, and every log and message that
/// carries an entry is JSON (`raft::log_store`, `raft::network`).
impl Serialize for LoggedCommand {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json().map_err(S::Error::custom)?.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for LoggedCommand {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = Box::<RawValue>::deserialize(deserializer)?;
        let command = serde_json::from_str(json.get()).map_err(D::Error::custom)?;
        Ok(Self {
            command,
            json: Arc::new(OnceLock::from(json)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::event::{Actor, Event, Outcome};

    fn append() -> Command {
        let event = Event {
            time_unix_nanos: 7,
            actor: Actor {
                id: "alice \"the admin\"".into(),
                kind: None,
                ip: None,
                user_agent: None,
            },
            action: "read".into(),
            resource: "db/ünïcode\n".into(),
            outcome: Outcome::Success,
            source: "svc".into(),
            details: serde_json::from_str(r#"{"b":[1,2.5,null],"a":{"x":"y"}}"#).unwrap(),
            idempotency_key: Some("k1".into()),
        };
        Command::Append {
            events: vec![event.clone(), event].into(),
            commit_time_unix_nanos: 42,
        }
    }

    #[test]
    fn its_json_is_the_commands_own_written_once_and_read_back_whole() {
        let command = append();
        let plain = serde_json::to_vec(&command).unwrap();
        let logged = LoggedCommand::new(command.clone());
        let copy = logged.clone();
        assert_eq!(serde_json::to_vec(&logged).unwrap(), plain);
        // Clones share what was written.
        assert!(copy.json.get().is_some());
        assert_eq!(serde_json::to_vec(&copy).unwrap(), plain);
        // Inside an entry, as the logs and messages carry it.
        let entry = serde_json::json!({ "Normal": &logged }).to_string();
        let plain_entry = serde_json::json!({ "Normal": &command }).to_string();
        assert_eq!(entry, plain_entry);
        // Read back: the same command, and the bytes it was read from kept.
        let read: LoggedCommand = serde_json::from_slice(&plain).unwrap();
        assert_eq!(read.command(), &command);
        assert_eq!(read.json.get().unwrap().get().as_bytes(), plain.as_slice());
        assert_eq!(serde_json::to_vec(&read).unwrap(), plain);
    }

    #[test]
    fn json_that_is_not_a_command_is_refused() {
        assert!(serde_json::from_str::<LoggedCommand>(r#"{"Nope":1}"#).is_err());
        assert!(serde_json::from_str::<LoggedCommand>(r#"{"Append":"#).is_err());
    }
}
