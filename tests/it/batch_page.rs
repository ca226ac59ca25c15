//! Issue 22: a batch's page through a real `qtjudge serve`: its leaderboard
//! with the pass@k of `?pass_at=` (as the batch's JSON takes them, links
//! to the reports carrying them, a malformed one refused), and a task
//! column in its table of answers when they span several tasks.

use serde_json::{json, Value};

use crate::server::Server;
use crate::support::{docker, fixture};

/// Posts `answers` as a batch and waits until it is done; its id.
async fn finished_batch(server: &Server, answers: &Value) -> String {
    let response = server
        .post("/v1/batches")
        .json(answers)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let view = server.get_json(&format!("/v1/batches/{id}?wait=240")).await;
    assert_eq!(view["status"], "done", "{view}");
    id
}

/// The batch's page with `query`: its status and text.
async fn page(server: &Server, id: &str, query: &str) -> (u16, String) {
    let response = server
        .get(&format!("/batches/{id}{query}"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    if status == 200 {
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=utf-8"
        );
    }
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_page_shows_the_pass_at_asked_and_a_task_column_over_several_tasks() {
    let Some(_) = docker().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--workers", "2"]);
    server.wait_ready().await;
    // A snippet and refusals: graded statically, no container run.
    let snippet = fixture("trap-diff-only.md");
    let refusal = "Sorry, I cannot help with that.";
    let two_tasks = finished_batch(
        &server,
        &json!([
            {"model": "m", "task": "reset-conversation", "output": snippet},
            {"model": "m", "task": "temperature-control", "output": refusal},
            {"model": "n", "task": "reset-conversation", "output": refusal},
        ]),
    )
    .await;

    let (status, html) = page(&server, &two_tasks, "?pass_at=1,5").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("<th>pass@1</th><th>pass@5</th><th>median</th>"),
        "the leaderboard's pass@k as asked:\n{html}"
    );
    assert!(
        html.contains("<tr><th>model</th><th>task</th><th>tier</th>"),
        "a task column:\n{html}"
    );
    for task in ["reset-conversation", "temperature-control"] {
        assert!(
            html.contains(&format!("</a></td><td><code>{task}</code></td><td><span")),
            "a row of {task}:\n{html}"
        );
    }
    assert!(
        html.contains(&format!(
            "href=\"/v1/batches/{two_tasks}?format=markdown&amp;pass_at=1,5\""
        )),
        "the report links carry pass_at:\n{html}"
    );
    // The same k as the JSON route gives for the batch.
    let view = server
        .get_json(&format!("/v1/batches/{two_tasks}?pass_at=1,5"))
        .await;
    assert_eq!(view["leaderboard"]["pass_at"], json!([1, 5]), "{view}");

    // Without the query: pass@1 alone, as before.
    let (status, html) = page(&server, &two_tasks, "").await;
    assert_eq!(status, 200);
    assert!(html.contains("<th>pass@1</th><th>median</th>"), "{html}");
    assert!(!html.contains("pass@5"), "{html}");

    // Refused as the JSON route refuses it.
    for bad in ["?pass_at=0", "?pass_at=1,x", "?pass_at=20000"] {
        let (status, body) = page(&server, &two_tasks, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"], "bad_request", "{error}");
    }

    // One task: no task column.
    let one_task = finished_batch(
        &server,
        &json!([
            {"model": "m", "task": "reset-conversation", "output": snippet},
            {"model": "n", "task": "reset-conversation", "output": refusal},
        ]),
    )
    .await;
    let (status, html) = page(&server, &one_task, "?pass_at=2").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("<tr><th>model</th><th>tier</th>"),
        "no task column with one task:\n{html}"
    );
    assert!(html.contains("<th>pass@2</th><th>median</th>"), "{html}");
    server.stop();
}
