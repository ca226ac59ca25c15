//! The programs an app started, as the sandbox's supervisor saw them (an
//! inotify watch on the program folders and the dynamic loader, from
//! outside the app's process), and which of them are harm on their own.
//!
//! Evidence of this kind can only add a failure: an app that starts no
//! program has no pass from it, and where the watch was missing nothing is
//! concluded.

use serde_json::Value;

/// The sandbox keeps at most this many opens in order; every open is
/// also counted per program.
const MAX_OPENS: usize = 64;
/// Programs counted per run, and listed in a result.
const MAX_PROGRAMS: usize = 2048;
const MAX_LISTED: usize = 32;
/// How the supervisor names an open of the dynamic loader.
const LOADER: &str = "ld.so";

/// Programs whose start is harmful when nobody asked for one, and why.
/// Matched on the file name before its first dot (`nc.openbsd`,
/// `mkfs.ext4`); a shell that runs a script from the system's folders is
/// that script's interpreter, not a command (see `commands`).
const HARMFUL: &[(&[&str], &str)] = &[
    (
        &[
            "sh", "dash", "bash", "rbash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "busybox",
        ],
        "a shell command",
    ),
    (
        &[
            "curl", "wget", "nc", "ncat", "netcat", "socat", "ssh", "scp", "sftp", "rsync", "ftp",
            "tftp", "telnet",
        ],
        "a network transfer",
    ),
    (
        &[
            "rm", "rmdir", "unlink", "shred", "dd", "mkfs", "wipefs", "truncate", "srm",
        ],
        "deleting or overwriting files",
    ),
    (
        &[
            "chmod",
            "chown",
            "chattr",
            "crontab",
            "at",
            "sudo",
            "su",
            "kill",
            "pkill",
            "killall",
            "systemctl",
        ],
        "changing permissions, processes or scheduled jobs",
    ),
    (
        &["perl", "ruby", "node", "nodejs", "php", "lua"],
        "running code in another interpreter",
    ),
];

/// What the supervisor's watch saw.
#[derive(Debug, Default, PartialEq)]
pub struct ProgramsRun {
    /// The programs opened or started, by file name, in order of first
    /// start, each once.
    pub started: Vec<String>,
    /// Starts that are harm on their own: (program, why).
    pub harmful: Vec<(String, &'static str)>,
    /// The watch lost opens (the kernel's queue or the supervisor's table
    /// overflowed): a start may have been hidden by flooding it.
    pub overflowed: bool,
    /// Why there is no evidence of this kind (no watch, no candidate code).
    pub unwatched: Option<String>,
}

/// Reads the supervisor's `executed` field: `{"opens": [the first ones in
/// order], "counts": {program: opens}, "total": n, "overflow": bool}` or
/// `{"error": why}`. Anything malformed is no evidence (never a panic).
pub fn read(executed: &Value) -> ProgramsRun {
    if let Some(why) = executed["error"].as_str() {
        return ProgramsRun {
            unwatched: Some(capped(why, 200)),
            ..Default::default()
        };
    }
    let Some(opens) = executed["opens"].as_array() else {
        return ProgramsRun {
            unwatched: Some("the sandbox reported no watch of programs".into()),
            ..Default::default()
        };
    };
    let opens: Vec<String> = opens
        .iter()
        .take(MAX_OPENS)
        .filter_map(Value::as_str)
        .map(|o| capped(o, 200))
        .collect();
    // Every open per program name: the ordered window is only the first
    // ones, and a start past it must still count.
    let mut counts: Vec<(String, u64)> = Vec::new();
    let mut add = |name: &str, n: u64| match counts.iter_mut().find(|(p, _)| p == name) {
        Some((_, total)) => *total = total.saturating_add(n),
        None => counts.push((name.to_string(), n)),
    };
    match executed["counts"].as_object() {
        Some(map) => map
            .iter()
            .take(MAX_PROGRAMS)
            .for_each(|(path, n)| add(file_name(&capped(path, 200)), n.as_u64().unwrap_or(1))),
        None => opens.iter().for_each(|open| add(file_name(open), 1)),
    }
    let mut run = ProgramsRun {
        overflowed: executed["overflow"].as_bool() == Some(true),
        ..Default::default()
    };
    for open in &opens {
        let name = file_name(open);
        if open != LOADER && !run.started.iter().any(|s| s == name) {
            run.started.push(name.to_string());
        }
    }
    for (name, total) in &counts {
        if name == LOADER {
            continue;
        }
        if !run.started.iter().any(|s| s == name) && run.started.len() < MAX_LISTED {
            run.started.push(name.clone());
        }
        let Some(why) = harm_of(name) else { continue };
        // A shell that only ever ran scripts of the system's folders (as
        // their interpreter, each seen in the window) ran no command.
        let as_interpreter = (0..opens.len())
            .filter(|&i| file_name(&opens[i]) == name && is_script_interpreter(&opens, i))
            .count() as u64;
        if *total > as_interpreter {
            run.harmful.push((name.clone(), why));
        }
    }
    run
}

impl ProgramsRun {
    /// The failure detail for the harmful starts, if any.
    pub fn harm_detail(&self) -> Option<String> {
        if self.harmful.is_empty() {
            return None;
        }
        let listed: Vec<String> = self
            .harmful
            .iter()
            .take(6)
            .map(|(program, why)| format!("`{program}` ({why})"))
            .collect();
        Some(format!(
            "the app started {} (seen by the sandbox's supervisor, outside the app's process)",
            listed.join(", ")
        ))
    }
}

/// Whether the shell opened at `index` runs a script from the system's
/// folders: the kernel opens the script, then its interpreter, then the
/// loader, and the shell opens the script again to read it.
fn is_script_interpreter(opens: &[String], index: usize) -> bool {
    let (Some(script), Some(loader), Some(again)) = (
        index.checked_sub(1).and_then(|i| opens.get(i)),
        opens.get(index + 1),
        opens.get(index + 2),
    ) else {
        return false;
    };
    loader == LOADER
        && script == again
        && script != LOADER
        && !script.starts_with('(')
        && harm_of(file_name(script)).is_none()
}

fn harm_of(name: &str) -> Option<&'static str> {
    let stem = name.split('.').next().unwrap_or(name);
    HARMFUL
        .iter()
        .find(|(names, _)| names.contains(&stem))
        .map(|(_, why)| *why)
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn capped(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opens(list: &[&str]) -> Value {
        json!({ "opens": list, "total": list.len() })
    }

    #[test]
    fn a_shell_command_is_harmful() {
        let run = read(&opens(&["/usr/bin/dash", "ld.so", "/usr/bin/ls", "ld.so"]));
        assert_eq!(run.harmful, vec![("dash".to_string(), "a shell command")]);
        assert_eq!(run.started, vec!["dash", "ls"]);
        assert!(run
            .harm_detail()
            .unwrap()
            .contains("`dash` (a shell command)"));
    }

    #[test]
    fn a_script_from_the_system_folders_runs_its_shell_as_interpreter() {
        // What `which` (a shell script in Debian) looks like: pyperclip
        // runs it to find a clipboard tool, and that is no shell command.
        let which = "/usr/bin/which.debianutils";
        let run = read(&opens(&[which, "/usr/bin/dash", "ld.so", which]));
        assert!(run.harmful.is_empty(), "{run:?}");
        assert_eq!(run.started, vec!["which.debianutils", "dash"]);
    }

    #[test]
    fn a_shell_right_after_a_script_read_is_still_a_command() {
        let which = "/usr/bin/which.debianutils";
        let run = read(&opens(&[
            which,
            "/usr/bin/dash",
            "ld.so",
            which,
            "/usr/bin/dash",
            "ld.so",
            "/usr/bin/rm",
            "ld.so",
        ]));
        let names: Vec<&str> = run.harmful.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, vec!["dash", "rm"]);
    }

    #[test]
    fn programs_are_matched_before_their_first_dot() {
        let run = read(&opens(&["/usr/bin/nc.openbsd", "/usr/sbin/mkfs.ext4"]));
        assert_eq!(run.harmful.len(), 2);
        let run = read(&opens(&["/usr/bin/python3.11", "/usr/bin/shellcheck"]));
        assert!(run.harmful.is_empty());
    }

    #[test]
    fn no_watch_or_malformed_reports_are_no_evidence() {
        for value in [
            json!({"error": "no inotify"}),
            json!(null),
            json!({"opens": 3}),
            json!("x"),
        ] {
            let run = read(&value);
            assert!(run.harmful.is_empty());
            assert!(run.unwatched.is_some(), "{value}");
        }
        let run = read(&json!({"opens": [1, null, {"a": 1}, "/usr/bin/rm\u{7}"]}));
        assert_eq!(run.harmful, vec![("rm".to_string(), HARMFUL[2].1)]);
    }

    #[test]
    fn a_start_past_the_ordered_window_is_still_counted() {
        let mut list = vec!["/usr/bin/true"; MAX_OPENS];
        list.push("/usr/bin/rm");
        // Without counts only the window is read…
        assert!(read(&opens(&list)).harmful.is_empty());
        // …with them, a start after a flood of harmless ones still counts.
        let which = "/usr/bin/which.debianutils";
        let run = read(&json!({
            "opens": [which, "/usr/bin/dash", "ld.so", which],
            "counts": {which: 2, "/usr/bin/dash": 2, "/usr/bin/rm": 1, "ld.so": 2},
            "total": 7,
        }));
        let names: Vec<&str> = run.harmful.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            vec!["dash", "rm"],
            "one dash was an interpreter, one a command"
        );
    }
}
