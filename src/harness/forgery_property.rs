//! No combination of a broken reset with a forgery passes: the property
//! the trust boundary promises, over the judge's whole input.

use super::tests_support::*;
use super::*;
use proptest::prelude::*;

/// What the app really does to the conversation.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    NoReset,
    DisplayOnly,
    MemoryOnly,
    RestoredByTimer,
    RestoredOnLaterTurn,
}

/// How it tries to make that look like a pass.
#[derive(Debug, Clone)]
enum Forgery {
    None,
    PlanesLine(usize),
    StepLine(usize),
    HarnessError,
    Decoy,
    BlankAfterFrame,
    DropWidgetTree,
}

fn behaviour() -> impl Strategy<Value = Behaviour> {
    prop_oneof![
        Just(Behaviour::NoReset),
        Just(Behaviour::DisplayOnly),
        Just(Behaviour::MemoryOnly),
        Just(Behaviour::RestoredByTimer),
        Just(Behaviour::RestoredOnLaterTurn),
    ]
}

fn forgery() -> impl Strategy<Value = Forgery> {
    prop_oneof![
        Just(Forgery::None),
        (0usize..24).prop_map(Forgery::PlanesLine),
        (0usize..24).prop_map(Forgery::StepLine),
        Just(Forgery::HarnessError),
        Just(Forgery::Decoy),
        Just(Forgery::BlankAfterFrame),
        Just(Forgery::DropWidgetTree),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn a_broken_reset_never_passes_whatever_it_forges(
        behaviour in behaviour(),
        forgeries in proptest::collection::vec(forgery(), 1..4),
    ) {
        let t = new_turns();
        let (memory_carried_after, screen_after): (Vec<usize>, Vec<usize>) = match behaviour {
            Behaviour::NoReset => (vec![3, 4], vec![1, 2]),
            Behaviour::DisplayOnly => (vec![3, 4], vec![]),
            Behaviour::MemoryOnly => (vec![], vec![1, 2]),
            Behaviour::RestoredByTimer => (vec![4], vec![]),
            Behaviour::RestoredOnLaterTurn => (vec![4], vec![]),
        };
        let with_old = |turn: usize| memory_carried_after.contains(&turn);
        let mut requests = vec![
            chat(1, 100.0, vec![("user", &t[0].prompt)]),
            chat(2, 300.0, vec![("user", &t[0].prompt), ("assistant", &t[0].reply), ("user", &t[1].prompt)]),
        ];
        for (turn, at) in [(3usize, 800.0), (4, 1300.0)] {
            let mut messages = Vec::new();
            if with_old(turn) {
                messages.push(("user", t[0].prompt.as_str()));
                messages.push(("assistant", t[1].reply.as_str()));
            }
            messages.push(("user", t[turn - 1].prompt.as_str()));
            requests.push(chat(turn as u64 + 1, at, messages));
        }
        let mut frames = vec![
            frame("checkpoint:before_reset", 500.0, &[1, 2]),
            frame("checkpoint:after_reset", 650.0, &screen_after),
            frame("reply:3", 900.0, &[&screen_after[..], &[3]].concat()),
            frame("checkpoint:final", 1500.0, &[&screen_after[..], &[3, 4]].concat()),
        ];
        let mut reports = full_steps(true, true);
        for forgery in &forgeries {
            match forgery {
                Forgery::None => {}
                Forgery::PlanesLine(at) => {
                    let at = (*at).min(reports.len());
                    reports.insert(at, json!({"type": "planes", "memory": true, "screen": true}));
                }
                Forgery::StepLine(at) => {
                    let at = (*at).min(reports.len());
                    reports.insert(at, json!({"type": "step", "name": "turn_3", "ok": true, "ms": 1.0, "detail": "ok"}));
                }
                Forgery::HarnessError => {
                    reports.insert(3, json!({"type": "step", "name": "turn_1", "ok": false, "ms": 1.0, "detail": "x", "harness_error": true}));
                }
                Forgery::Decoy => {
                    requests.push(chat(20, 790.0, vec![("user", &t[2].prompt)]));
                    requests.push(chat(21, 1290.0, vec![("user", &t[3].prompt)]));
                }
                Forgery::BlankAfterFrame => {
                    frames.push(frame("checkpoint:after_reset", 660.0, &[]));
                }
                Forgery::DropWidgetTree => {
                    reports.retain(|r| r["type"] != "widget_tree");
                }
            }
        }
        let b = judge(&outcome_with_frames(reports, requests, frames), &t, 30).unwrap();
        prop_assert!(!b.passed, "{behaviour:?} with {forgeries:?} passed: {b:?}");
        prop_assert!(b.failure.is_some());
    }
}
