//! Error kinds that decide a binary's exit code, and the file problems `enroll check` lists.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | ok |
//! | 1 | error (bad file, I/O, Docker) |
//! | 2 | usage (bad flags or arguments) |
//! | 3 | refused: no capacity, a conflict, or over a quota |
//! | 4 | authentication failed |

use std::fmt;

pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_REFUSED: u8 = 3;
pub const EXIT_AUTHENTICATION: u8 = 4;

/// The request was understood but cannot be granted: no capacity, a conflict, a quota.
#[derive(Debug)]
pub struct Refused(pub String);

/// The user could not prove who they are.
#[derive(Debug)]
pub struct AuthenticationFailed(pub String);

/// The command line (or an answer that stands for one) was malformed.
#[derive(Debug)]
pub struct UsageError(pub String);

macro_rules! message_error {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }
        impl std::error::Error for $name {}
    };
}
message_error!(Refused);
message_error!(AuthenticationFailed);
message_error!(UsageError);

/// The exit code a binary returns for an error: the first kind found along its chain.
pub fn exit_code_for(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if cause.is::<Refused>() || cause.is::<crate::booking::NoCapacity>() {
            return EXIT_REFUSED;
        }
        if cause.is::<AuthenticationFailed>() {
            return EXIT_AUTHENTICATION;
        }
        if cause.is::<UsageError>() {
            return EXIT_USAGE;
        }
    }
    EXIT_ERROR
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One thing wrong in one file: where, which field, and what was expected.
#[derive(Debug, Clone, PartialEq)]
pub struct FileProblem {
    pub severity: Severity,
    /// As shown to the admin: relative to the root where possible.
    pub path: String,
    pub line: Option<usize>,
    /// Dotted path of the field (`max_default_capability.cpus`), empty when the whole file is at fault.
    pub field: String,
    pub message: String,
}

impl FileProblem {
    pub fn error(
        path: impl Into<String>,
        line: Option<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        FileProblem { severity: Severity::Error, path: path.into(), line, field: field.into(), message: message.into() }
    }

    pub fn warning(
        path: impl Into<String>,
        line: Option<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        FileProblem { severity: Severity::Warning, ..Self::error(path, line, field, message) }
    }
}

impl fmt::Display for FileProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.path)?;
        if let Some(line) = self.line {
            write!(formatter, ":{line}")?;
        }
        if self.severity == Severity::Warning {
            write!(formatter, ": warning")?;
        }
        if !self.field.is_empty() {
            write!(formatter, ": {}", self.field)?;
        }
        write!(formatter, ": {}", self.message)
    }
}

impl std::error::Error for FileProblem {}

/// Several problems at once, so one run can report everything that is wrong in a file.
#[derive(Debug, Clone)]
pub struct FileProblems(pub Vec<FileProblem>);

impl fmt::Display for FileProblems {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(formatter)?;
            }
            write!(formatter, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FileProblems {}
