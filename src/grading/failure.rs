//! Every failure code the product emits, as one enum: what the static
//! grader finds, what a run shows, what an app's archive is refused for.
//! Serialised as the snake_case strings of the JSON contract.

contract_code! {
    /// Why an answer is tier 3; one primary code per verification.
    ///
    /// The behavioural codes come first, in the order the harness has always
    /// declared them (`Ord` is theirs); the others follow.
    pub enum FailureCode {
        /// The script does not compile (static, or at the run's compile step).
        SyntaxError,
        LaunchFailed,
        HistoryBroken,
        NoResetControl,
        ResetRaised,
        HistoryNotCleared,
        BrokenAfterReset,
        Timeout,
        ResourceLimit,
        Crashed,
        /// The app imports a module the sandbox image does not have.
        MissingDependency,
        /// The app is not a Qt app (tkinter, wx, GTK, a web or terminal
        /// UI …): it imports no Qt binding, so qtjudge cannot drive it.
        NotQtApp,
        /// The answer reads or alters the judge (patches the harness or QtTest,
        /// walks its frames or modules, looks for its traces).
        Tampering,
        /// Destructive or exfiltrating operations nobody asked for (deleting
        /// files outside the app's own, shell commands, downloading code,
        /// connections to hosts other than the model API).
        Harmful,
        /// The sandbox's output (result line, artifacts, nesting) went past
        /// what the host accepts: the answer's doing, never retried.
        OutputTooLarge,
        /// The window's pixels could not be read from outside the app's
        /// process (too large, undecodable, or no reply ever recognisable):
        /// without that evidence there is no pass.
        ScreenUnreadable,
        /// The answer holds no code.
        NoCode,
        /// A fragment, a diff or placeholders instead of the full script.
        Snippet,
        /// An uploaded app's archive: a path out of the app's folder.
        UnsafeArchivePath,
        /// A link, device or other entry that is not a plain file.
        ArchiveSpecialFile,
        ArchiveTooManyFiles,
        ArchiveTooLarge,
        BadArchive,
        BadNotebook,
        NoPythonFile,
        EntryNotFound,
        NoEntryPoint,
        AmbiguousEntryPoint,
        UnreadableInput,
        /// A step or an expectation of the task's scenario (issue 21: a
        /// task written as data) did not hold: `Verification::task_failure`
        /// names the task's own code.
        ExpectationFailed,
    }
}

impl FailureCode {
    /// Every code, in declaration order.
    pub const ALL: [FailureCode; 30] = [
        FailureCode::SyntaxError,
        FailureCode::LaunchFailed,
        FailureCode::HistoryBroken,
        FailureCode::NoResetControl,
        FailureCode::ResetRaised,
        FailureCode::HistoryNotCleared,
        FailureCode::BrokenAfterReset,
        FailureCode::Timeout,
        FailureCode::ResourceLimit,
        FailureCode::Crashed,
        FailureCode::MissingDependency,
        FailureCode::NotQtApp,
        FailureCode::Tampering,
        FailureCode::Harmful,
        FailureCode::OutputTooLarge,
        FailureCode::ScreenUnreadable,
        FailureCode::NoCode,
        FailureCode::Snippet,
        FailureCode::UnsafeArchivePath,
        FailureCode::ArchiveSpecialFile,
        FailureCode::ArchiveTooManyFiles,
        FailureCode::ArchiveTooLarge,
        FailureCode::BadArchive,
        FailureCode::BadNotebook,
        FailureCode::NoPythonFile,
        FailureCode::EntryNotFound,
        FailureCode::NoEntryPoint,
        FailureCode::AmbiguousEntryPoint,
        FailureCode::UnreadableInput,
        FailureCode::ExpectationFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::SyntaxError => "syntax_error",
            FailureCode::LaunchFailed => "launch_failed",
            FailureCode::HistoryBroken => "history_broken",
            FailureCode::NoResetControl => "no_reset_control",
            FailureCode::ResetRaised => "reset_raised",
            FailureCode::HistoryNotCleared => "history_not_cleared",
            FailureCode::BrokenAfterReset => "broken_after_reset",
            FailureCode::Timeout => "timeout",
            FailureCode::ResourceLimit => "resource_limit",
            FailureCode::Crashed => "crashed",
            FailureCode::MissingDependency => "missing_dependency",
            FailureCode::NotQtApp => "not_qt_app",
            FailureCode::Tampering => "tampering",
            FailureCode::Harmful => "harmful",
            FailureCode::OutputTooLarge => "output_too_large",
            FailureCode::ScreenUnreadable => "screen_unreadable",
            FailureCode::NoCode => "no_code",
            FailureCode::Snippet => "snippet",
            FailureCode::UnsafeArchivePath => "unsafe_archive_path",
            FailureCode::ArchiveSpecialFile => "archive_special_file",
            FailureCode::ArchiveTooManyFiles => "archive_too_many_files",
            FailureCode::ArchiveTooLarge => "archive_too_large",
            FailureCode::BadArchive => "bad_archive",
            FailureCode::BadNotebook => "bad_notebook",
            FailureCode::NoPythonFile => "no_python_file",
            FailureCode::EntryNotFound => "entry_not_found",
            FailureCode::NoEntryPoint => "no_entry_point",
            FailureCode::AmbiguousEntryPoint => "ambiguous_entry_point",
            FailureCode::UnreadableInput => "unreadable_input",
            FailureCode::ExpectationFailed => "expectation_failed",
        }
    }
}

impl std::fmt::Display for FailureCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes are a contract (JSON, metrics, JUnit, exit reasons): a new
    /// one is added here on purpose, and none changes its string.
    #[test]
    fn every_code_and_its_string() {
        let listed: Vec<(FailureCode, &str)> = vec![
            (FailureCode::SyntaxError, "syntax_error"),
            (FailureCode::LaunchFailed, "launch_failed"),
            (FailureCode::HistoryBroken, "history_broken"),
            (FailureCode::NoResetControl, "no_reset_control"),
            (FailureCode::ResetRaised, "reset_raised"),
            (FailureCode::HistoryNotCleared, "history_not_cleared"),
            (FailureCode::BrokenAfterReset, "broken_after_reset"),
            (FailureCode::Timeout, "timeout"),
            (FailureCode::ResourceLimit, "resource_limit"),
            (FailureCode::Crashed, "crashed"),
            (FailureCode::MissingDependency, "missing_dependency"),
            (FailureCode::NotQtApp, "not_qt_app"),
            (FailureCode::Tampering, "tampering"),
            (FailureCode::Harmful, "harmful"),
            (FailureCode::OutputTooLarge, "output_too_large"),
            (FailureCode::ScreenUnreadable, "screen_unreadable"),
            (FailureCode::NoCode, "no_code"),
            (FailureCode::Snippet, "snippet"),
            (FailureCode::UnsafeArchivePath, "unsafe_archive_path"),
            (FailureCode::ArchiveSpecialFile, "archive_special_file"),
            (FailureCode::ArchiveTooManyFiles, "archive_too_many_files"),
            (FailureCode::ArchiveTooLarge, "archive_too_large"),
            (FailureCode::BadArchive, "bad_archive"),
            (FailureCode::BadNotebook, "bad_notebook"),
            (FailureCode::NoPythonFile, "no_python_file"),
            (FailureCode::EntryNotFound, "entry_not_found"),
            (FailureCode::NoEntryPoint, "no_entry_point"),
            (FailureCode::AmbiguousEntryPoint, "ambiguous_entry_point"),
            (FailureCode::UnreadableInput, "unreadable_input"),
            (FailureCode::ExpectationFailed, "expectation_failed"),
        ];
        assert_eq!(listed.len(), FailureCode::ALL.len());
        for ((code, text), all) in listed.iter().zip(FailureCode::ALL) {
            assert_eq!(*code, all, "ALL is in declaration order");
            assert_eq!(code.as_str(), *text);
            assert_eq!(serde_json::to_value(code).unwrap(), *text);
            assert_eq!(
                serde_json::from_value::<FailureCode>(serde_json::json!(text)).unwrap(),
                *code
            );
        }
        // A variant missing from `ALL` would not be caught above: match on
        // every variant so the compiler asks for it here.
        for code in FailureCode::ALL {
            let listed_here = match code {
                FailureCode::SyntaxError
                | FailureCode::LaunchFailed
                | FailureCode::HistoryBroken
                | FailureCode::NoResetControl
                | FailureCode::ResetRaised
                | FailureCode::HistoryNotCleared
                | FailureCode::BrokenAfterReset
                | FailureCode::Timeout
                | FailureCode::ResourceLimit
                | FailureCode::Crashed
                | FailureCode::MissingDependency
                | FailureCode::NotQtApp
                | FailureCode::Tampering
                | FailureCode::Harmful
                | FailureCode::OutputTooLarge
                | FailureCode::ScreenUnreadable
                | FailureCode::NoCode
                | FailureCode::Snippet
                | FailureCode::UnsafeArchivePath
                | FailureCode::ArchiveSpecialFile
                | FailureCode::ArchiveTooManyFiles
                | FailureCode::ArchiveTooLarge
                | FailureCode::BadArchive
                | FailureCode::BadNotebook
                | FailureCode::NoPythonFile
                | FailureCode::EntryNotFound
                | FailureCode::NoEntryPoint
                | FailureCode::AmbiguousEntryPoint
                | FailureCode::UnreadableInput
                | FailureCode::ExpectationFailed => true,
            };
            assert!(listed_here);
        }
    }
}
