//! Builders of sandbox outcomes for the judge's tests: reports, requests,
//! frames and whole conversations as the supervisor would record them.

use super::*;

pub fn turns() -> Vec<Turn> {
    new_turns()
}

pub fn step(name: &str, ok: bool) -> Value {
    json!({"type": "step", "name": name, "ok": ok, "ms": 1.0, "detail": if ok {"ok"} else {"it failed"}})
}

/// Puts each step's `step_start` before its report, as the harness does
/// (stamped 10 ms apart), unless the test wrote one.
pub fn with_starts(reports: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for report in reports {
        if report["type"] == "step" {
            let open = out
                .iter()
                .rev()
                .find(|r| r["type"] == "step_start" || r["type"] == "step");
            if !open.is_some_and(|r| r["type"] == "step_start" && r["name"] == report["name"]) {
                let at = out.len() as f64 * 10.0;
                out.push(json!({"type": "step_start", "name": report["name"], "at_ms": at}));
            }
        }
        out.push(report);
    }
    out
}

pub fn chat(seq: u64, at_ms: f64, messages: Vec<(&str, &str)>) -> Value {
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|(r, c)| json!({"role": r, "content": c}))
        .collect();
    json!({"seq": seq, "at_ms": at_ms, "method": "POST", "path": "/api/chat", "body": {"model": "m", "messages": messages}})
}

/// A frame showing the reply marks of `turns` (1-based), taken at `at_ms`.
pub fn frame(name: &str, at_ms: f64, turns: &[usize]) -> Value {
    use base64::Engine as _;
    use std::io::Write;
    let (width, height) = (300usize, 40 * (turns.len() + 1));
    let mut bgrx = vec![255u8; width * height * 4];
    for (row, &turn) in turns.iter().enumerate() {
        let mut x = 10;
        for &n in &crate::turns::REPLY_MARKS[turn - 1] {
            for col in x..x + 8 * n as usize {
                for y in 10 + row * 40..24 + row * 40 {
                    bgrx[(y * width + col) * 4..][..3].copy_from_slice(&[30, 30, 30]);
                }
            }
            x += 8 * n as usize + 4;
        }
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&bgrx).unwrap();
    let data = base64::engine::general_purpose::STANDARD.encode(z.finish().unwrap());
    json!({"name": name, "at_ms": at_ms, "width": width, "height": height, "bgrx_zlib": data})
}

pub fn outcome(reports: Vec<Value>, requests: Vec<Value>) -> SandboxOutcome {
    outcome_with_frames(reports, requests, good_frames())
}

pub fn outcome_with_frames(
    reports: Vec<Value>,
    requests: Vec<Value>,
    frames: Vec<Value>,
) -> SandboxOutcome {
    SandboxOutcome {
        result: Some(json!({
            "harness_ready": true, "timed_out": false, "exit": {"code": 0, "signal": null},
            "reports": with_starts(reports), "requests": requests, "resources": {}, "stdout": "", "stderr": "",
            "screen": {"platform": "vnc", "error": null, "frames_dropped": 0},
            "frames": frames,
        })),
        ..Default::default()
    }
}

/// A run that did everything right: every step, both in-process planes
/// clear, the clean conversation, the good frames.
pub fn clean_outcome(t: &[Turn]) -> SandboxOutcome {
    outcome(full_steps(true, true), conversation(t, false))
}

/// The clean conversation with one more request after the reset (turn 3's
/// own stays clean beside it), at `at_ms`.
pub fn with_extra_request(t: &[Turn], at_ms: f64, messages: Vec<(&str, &str)>) -> Vec<Value> {
    let mut requests = conversation(t, false);
    requests.insert(3, chat(9, at_ms, messages));
    requests
}

/// What the judge makes of a run whose harness did every step and read
/// both in-process planes clear, with the fake server's `requests`.
pub fn judged(t: &[Turn], requests: Vec<Value>) -> Behaviour {
    judge(&outcome(full_steps(true, true), requests), t, 30).unwrap()
}

/// Likewise for the clean conversation, with the supervisor's `frames`.
pub fn judged_with_frames(t: &[Turn], frames: Vec<Value>) -> Behaviour {
    let requests = conversation(t, false);
    judge(
        &outcome_with_frames(full_steps(true, true), requests, frames),
        t,
        30,
    )
    .unwrap()
}

/// Turns 1-2 shown before the reset (at 500 ms, reset at 600 ms), turns
/// 3-4 after it.
pub fn good_frames() -> Vec<Value> {
    vec![
        frame("checkpoint:before_reset", 500.0, &[1, 2]),
        frame("checkpoint:after_reset", 650.0, &[]),
        frame("reply:3", 900.0, &[3]),
        frame("checkpoint:final", 1500.0, &[3, 4]),
    ]
}

pub fn full_steps(memory: bool, screen: bool) -> Vec<Value> {
    // Every step up to the reset's, as the harness names them.
    let mut reports: Vec<Value> = crate::report_channel::STEPS[..6]
        .iter()
        .map(|n| step(n, true))
        .collect();
    reports.push(json!({"type": "step_start", "name": "click_reset", "at_ms": 600.0}));
    let mut clicked = step("click_reset", true);
    clicked["at_ms"] = json!(610.0);
    reports.push(clicked);
    reports.push(json!({"type": "step_start", "name": "check_cleared", "at_ms": 620.0}));
    reports.push(json!({"type": "planes", "memory": memory, "screen": screen}));
    reports.push(step("check_cleared", true));
    for name in ["turn_3", "idle", "turn_4"] {
        reports.push(step(name, true));
    }
    reports.push(json!({"type": "done"}));
    reports
}

/// The four turns' requests; turn 3's carries turns 1-2 when asked.
pub fn conversation(t: &[Turn], third_carries_history: bool) -> Vec<Value> {
    let mut third = vec![];
    if third_carries_history {
        third.push(("user", t[0].prompt.as_str()));
        third.push(("assistant", t[0].reply.as_str()));
    }
    third.push(("user", t[2].prompt.as_str()));
    vec![
        chat(1, 100.0, vec![("user", &t[0].prompt)]),
        chat(
            2,
            300.0,
            vec![
                ("user", &t[0].prompt),
                ("assistant", &t[0].reply),
                ("user", &t[1].prompt),
            ],
        ),
        chat(3, 800.0, third),
        chat(
            4,
            1300.0,
            vec![
                ("user", &t[2].prompt),
                ("assistant", &t[2].reply),
                ("user", &t[3].prompt),
            ],
        ),
    ]
}
