//! The one rule for names users give: a bounded run of ASCII letters, digits and some
//! punctuation, so that a name is safe in a store key, a file or object path, a CQL identifier, a
//! metric label and a URL without escaping.
//!
//! Each kind of name is a [`NameRule`] constant here; what differs between them (length, which
//! punctuation, the first character) is what the system holding the name demands (a Kafka topic,
//! a Cassandra keyspace), not a second implementation.

/// What a kind of name may look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameRule {
    pub max_bytes: usize,
    /// Allowed besides ASCII letters and digits.
    pub punctuation: &'static [char],
    /// The first character must be a letter (CQL identifiers).
    pub letter_first: bool,
    /// Characters a name must not start with (a leading `.` hides a file).
    pub not_first: &'static [char],
}

/// The longest job, window or detector name.
pub const MAX_NAME_BYTES: usize = 64;

/// Job names: part of store keys, checkpoint paths and consumer-group ids.
pub const JOB: NameRule = NameRule::new(MAX_NAME_BYTES, &['_', '-']);
/// Window and detector names: part of store keys and of detector series (`<window>.<aggregate>`).
pub const WINDOW: NameRule = NameRule::new(MAX_NAME_BYTES, &['_', '-', '.']);
pub const DETECTOR: NameRule = WINDOW;
/// Savepoint names: file and object names.
pub const SAVEPOINT: NameRule = NameRule {
    not_first: &['.'],
    ..NameRule::new(128, &['_', '-', '.'])
};
/// Kafka topic names (Kafka's own rule).
pub const KAFKA_TOPIC: NameRule = NameRule::new(249, &['.', '_', '-']);
/// Cassandra keyspaces (unquoted CQL identifiers, at most 48 characters).
pub const CASSANDRA_KEYSPACE: NameRule = NameRule {
    letter_first: true,
    ..NameRule::new(48, &['_'])
};
/// Cassandra datacenter names, as replication options.
pub const CASSANDRA_DATACENTER: NameRule = NameRule::new(64, &['_', '-', '.']);

impl NameRule {
    pub const fn new(max_bytes: usize, punctuation: &'static [char]) -> Self {
        Self {
            max_bytes,
            punctuation,
            letter_first: false,
            not_first: &[],
        }
    }

    pub fn allows(&self, name: &str) -> bool {
        let first_ok = name.chars().next().is_some_and(|c| {
            (!self.letter_first || c.is_ascii_alphabetic()) && !self.not_first.contains(&c)
        });
        first_ok
            && name.len() <= self.max_bytes
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || self.punctuation.contains(&c))
    }

    /// `Err` says what is allowed, e.g. "must be 1 to 64 letters, digits or '_', '-'".
    pub fn check(&self, name: &str) -> Result<(), String> {
        if self.allows(name) {
            return Ok(());
        }
        let punctuation: Vec<String> = self.punctuation.iter().map(|c| format!("'{c}'")).collect();
        let mut rule = format!(
            "must be 1 to {} letters, digits or {}",
            self.max_bytes,
            punctuation.join(", ")
        );
        if self.letter_first {
            rule.push_str(", starting with a letter");
        }
        for c in self.not_first {
            rule.push_str(&format!(", not starting with '{c}'"));
        }
        Err(rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_takes_what_its_system_takes_and_says_what_that_is() {
        assert!(JOB.allows("default") && JOB.allows("a-b_c"));
        assert!(!JOB.allows("a.b") && !JOB.allows("") && !JOB.allows(&"x".repeat(65)));
        assert!(WINDOW.allows("tumble_10s.v2"));
        assert!(SAVEPOINT.allows("before-upgrade.1") && !SAVEPOINT.allows(".hidden"));
        assert!(!SAVEPOINT.allows("../etc") && !SAVEPOINT.allows("a/b"));
        assert!(CASSANDRA_KEYSPACE.allows("streampulse_1"));
        assert!(!CASSANDRA_KEYSPACE.allows("1abc") && !CASSANDRA_KEYSPACE.allows("x; DROP"));
        assert!(KAFKA_TOPIC.allows(&"t".repeat(249)) && !KAFKA_TOPIC.allows(&"t".repeat(250)));
        assert_eq!(
            JOB.check("a b").unwrap_err(),
            "must be 1 to 64 letters, digits or '_', '-'"
        );
        assert!(CASSANDRA_KEYSPACE
            .check("_x")
            .unwrap_err()
            .ends_with("starting with a letter"));
        assert!(JOB.check("ok").is_ok());
    }
}
