//! Issue 4's acceptance: every fixture answer, graded through the real
//! Docker sandbox, gets the tier and failure its manifest gives.

use crate::support::{repo, verify_in_docker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_answer_gets_its_expected_tier() {
    let dir = repo().join("fixtures/outputs/reset-conversation");
    let manifest = crate::support::manifest();
    assert!(
        manifest.len() >= 20,
        "the manifest should list every model and trap"
    );
    let mut wrong = Vec::new();
    for expected in &manifest {
        let answer = std::fs::read_to_string(dir.join(&expected.file)).unwrap();
        let Some(v) = verify_in_docker(&answer, &expected.model).await else {
            return;
        };
        let failure = v.failure.map(|f| f.as_str()).unwrap_or_default();
        let kinds: Vec<&str> = v
            .unrequested_changes
            .iter()
            .map(|c| c.kind.as_str())
            .collect();
        let unseen: Vec<&String> = expected
            .changes
            .iter()
            .filter(|c| !kinds.contains(&c.as_str()))
            .collect();
        if !unseen.is_empty() {
            wrong.push(format!(
                "{}: changes {unseen:?} not reported ({kinds:?})",
                expected.file
            ));
        }
        if v.tier != Some(expected.tier) || failure != expected.failure {
            wrong.push(format!(
                "{}: expected tier {} {:?}, got {:?} {:?} ({})",
                expected.file, expected.tier, expected.failure, v.tier, failure, v.reason
            ));
        }
    }
    assert!(wrong.is_empty(), "misgraded answers:\n{}", wrong.join("\n"));
}
