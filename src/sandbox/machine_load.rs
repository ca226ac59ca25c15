//! How long a busy machine kept a run waiting for a CPU: the time its wall
//! clock is lengthened by, so the load beside an answer is never its fault.
//!
//! The supervisor and the harness measure the same thing inside the
//! sandbox (docker/harness/machine_load.py) to move their own deadlines
//! on; the host measures it here so that its backstop (the kill when no
//! result came) is never earlier than the supervisor's moved deadline.
//! The measure is the kernel's CPU pressure: the `some` total of
//! /proc/pressure/cpu, the time during which at least one runnable task
//! waited for a CPU. The allowance is capped (the task's wall clock
//! again), so an answer that loads the machine itself delays its verdict
//! by at most that, and never changes it.

use std::time::Duration;

const PRESSURE: &str = "/proc/pressure/cpu";

/// The most a busy machine may lengthen a run of `wall` (as much again).
pub fn busy_cap(wall: Duration) -> Duration {
    wall
}

/// A stall counter read at the start of a run.
#[derive(Debug, Clone, Copy)]
pub struct Stall {
    /// The `some` total at the start; None where the kernel has no PSI.
    start: Option<Duration>,
}

impl Stall {
    pub fn start() -> Stall {
        Stall {
            start: read_pressure(),
        }
    }

    /// The stall since the start, capped at `cap`. Without PSI the host
    /// cannot tell, and grants the cap: the supervisor's own measure then
    /// ends the run, the host's kill only backs it up.
    pub fn granted(&self, cap: Duration) -> Duration {
        match (self.start, read_pressure()) {
            (Some(start), Some(now)) => now.saturating_sub(start).min(cap),
            _ => cap,
        }
    }
}

fn read_pressure() -> Option<Duration> {
    parse_some_total(&std::fs::read_to_string(PRESSURE).ok()?)
}

/// The `some` line's `total=` (microseconds) of a pressure file.
fn parse_some_total(text: &str) -> Option<Duration> {
    let line = text.lines().find(|line| line.starts_with("some "))?;
    let total = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("total="))?;
    total.parse::<u64>().ok().map(Duration::from_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_some_total_is_read_in_microseconds() {
        let text = "some avg10=4.86 avg60=4.36 avg300=1.40 total=5173332\n\
                    full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(
            parse_some_total(text),
            Some(Duration::from_micros(5_173_332))
        );
    }

    #[test]
    fn a_file_without_a_some_total_gives_nothing() {
        assert_eq!(parse_some_total(""), None);
        assert_eq!(parse_some_total("full avg10=0.00 total=12\n"), None);
        assert_eq!(parse_some_total("some avg10=1.0 total=x\n"), None);
    }

    #[test]
    fn without_pressure_the_cap_is_granted_and_with_it_never_more() {
        let cap = Duration::from_secs(12);
        assert_eq!(Stall { start: None }.granted(cap), cap);
        let from_boot = Stall {
            start: Some(Duration::ZERO),
        };
        assert!(from_boot.granted(cap) <= cap);
    }
}
