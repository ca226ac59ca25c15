//! Issue 22's pages for debugging failing cases, through a real `qtjudge
//! serve`: the index page's form submits a pasted answer or a file (303
//! to the new verification's page; bad input an HTML 4xx, never a 500; the
//! token needed as for the API), a verification's re-run (a new one that
//! says which it runs again), and the side-by-side diff against the task's
//! original with the static grader's unrequested changes highlighted; then
//! the same pages in headless Chromium.

use std::time::Duration;

use serde_json::Value;

use crate::server::{Server, TOKEN};
use crate::service::{chromium, rendered};
use crate::support::{docker, fixture};

/// A form's body: its content type and bytes.
type Form = (String, Vec<u8>);

/// A multipart body as a browser sends the index page's form: its text
/// fields, and `file` (empty, without a name, when none was chosen).
fn form(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> Form {
    let boundary = format!("form-{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    let (filename, data) = file.unwrap_or(("", b""));
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// POSTs a form to `path` as a browser on the service's own page would
/// (its Origin); the response, unfollowed.
async fn post_form(server: &Server, path: &str, (content_type, body): Form) -> reqwest::Response {
    no_redirects()
        .post(server.url(path))
        .bearer_auth(TOKEN)
        .header("content-type", content_type)
        .header("origin", server.base.trim_end_matches('/'))
        .header("sec-fetch-site", "same-origin")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The new verification a 303 leads to (its id), after checking the
/// redirect, and that its page answers.
async fn followed(server: &Server, response: reqwest::Response) -> String {
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    assert_eq!(status, 303, "{:?}", response.text().await);
    let location = location.expect("a Location");
    let id = location
        .strip_prefix("/verifications/")
        .expect("to a verification's page")
        .to_string();
    let page = server.get(&location).send().await.unwrap();
    assert_eq!(page.status(), 200);
    id
}

/// A page's HTML, once its verification finished.
async fn finished_page(server: &Server, id: &str) -> (Value, String) {
    let view = server.finished(id).await;
    let html = server
        .get(&format!("/verifications/{id}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (view, html)
}

/// The static unrequested changes' lines in a result, and a cell of the
/// diff highlighted at the first.
fn assert_highlighted(view: &Value, html: &str) {
    let lines: Vec<u64> = view["result"]["unrequested_changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["source"] == "static")
        .filter_map(|c| c["line"].as_u64())
        .collect();
    let first = *lines
        .first()
        .expect("a static unrequested change with its line");
    let kind = view["result"]["unrequested_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["line"] == first)
        .unwrap()["kind"]
        .as_str()
        .unwrap();
    assert!(
        html.contains("<table id=\"diff\" class=\"diff\">"),
        "{html}"
    );
    let cell = format!("<td class=\"n\">{first}</td><td class=\"code flagged\" id=\"D{first}\" title=\"unrequested change: {kind}");
    assert!(html.contains(&cell), "{cell} in:\n{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_submits_an_answer_the_page_reruns_it_and_shows_its_diff() {
    let Some(_) = docker().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--workers", "2"]);
    server.wait_ready().await;

    // The form offers every task the service knows.
    let index = server.get("/").send().await.unwrap();
    let csp = index.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("form-action 'self'"), "{csp}");
    let index = index.text().await.unwrap();
    for task in ["reset-conversation", "temperature-control", "generic-reset"] {
        assert!(
            index.contains(&format!("<option value=\"{task}\">")),
            "{task}:\n{index}"
        );
    }

    // A pasted answer (its line breaks CRLF, as a browser sends a
    // textarea's): tier 2, a new layout the static grader names.
    let answer = fixture("magistral.md").replace('\n', "\r\n");
    let submitted = post_form(
        &server,
        "/verifications",
        form(
            &[
                ("task", "reset-conversation"),
                ("model", "magistral"),
                ("output", &answer),
                ("entry", ""),
            ],
            None,
        ),
    )
    .await;
    let first = followed(&server, submitted).await;
    let (view, html) = finished_page(&server, &first).await;
    assert_eq!(view["result"]["tier"], 2, "{view}");
    assert_eq!(view["model"], "magistral");
    assert_highlighted(&view, &html);
    assert!(
        html.contains(&format!("action=\"/verifications/{first}/rerun\"")),
        "{html}"
    );

    // Re-run: a new verification of the same answer and task.
    let rerun = post_form(
        &server,
        &format!("/verifications/{first}/rerun"),
        (String::new(), Vec::new()),
    )
    .await;
    let second = followed(&server, rerun).await;
    assert_ne!(second, first);
    let (again, html) = finished_page(&server, &second).await;
    assert_eq!(again["result"]["tier"], 2, "{again}");
    assert_eq!(
        (&again["model"], &again["task"]),
        (&view["model"], &view["task"])
    );
    assert_eq!(again["metadata"]["rerun_of"], first.as_str(), "{again}");
    assert!(
        html.contains(&format!("re-run of <a href=\"/verifications/{first}\">")),
        "{html}"
    );
    assert_highlighted(&again, &html);

    // A file: an answer read as the API reads an upload (no code in
    // this one: judged without a run).
    let uploaded = post_form(
        &server,
        "/verifications",
        form(
            &[("task", "reset-conversation"), ("output", "")],
            Some(("answer.md", fixture("trap-no-code.md").as_bytes())),
        ),
    )
    .await;
    let third = followed(&server, uploaded).await;
    let view = server.finished(&third).await;
    assert_eq!(view["task"], "reset-conversation", "{view}");
    assert_eq!(view["result"]["tier"], 3, "{view}");

    // Bad input: a page saying why, with the API's 4xx.
    let cases: Vec<(u16, &str, Form)> = vec![
        (
            422,
            "paste an answer or choose a file",
            form(&[("output", " ")], None),
        ),
        (
            422,
            "not both",
            form(&[("output", "x")], Some(("a.py", b"y"))),
        ),
        (
            422,
            "unknown task",
            form(&[("task", "no-such-task"), ("output", "x")], None),
        ),
        (
            422,
            "",
            form(&[("output", "")], Some(("app.zip", b"not a zip at all"))),
        ),
        (
            400,
            "multipart/form-data",
            (
                "application/x-www-form-urlencoded".into(),
                b"output=x".to_vec(),
            ),
        ),
    ];
    for (status, says, body) in cases {
        let response = post_form(&server, "/verifications", body).await;
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=utf-8"
        );
        let html = response.text().await.unwrap();
        assert!(
            html.contains("<h1>Not submitted</h1>") && html.contains(says),
            "{says}: {html}"
        );
    }
    let missing = post_form(
        &server,
        "/verifications/no-such-job/rerun",
        (String::new(), Vec::new()),
    )
    .await;
    assert_eq!(missing.status(), 404);
    assert!(missing
        .text()
        .await
        .unwrap()
        .contains("no verification with id"));

    // Another site's form, and no token: refused, nothing queued.
    let (content_type, body) = form(&[("output", "x")], None);
    let cross = no_redirects()
        .post(server.url("/verifications"))
        .bearer_auth(TOKEN)
        .header("content-type", &content_type)
        .header("origin", "http://evil.example")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 422);
    assert!(cross.text().await.unwrap().contains("another site"));
    for path in ["/verifications", &format!("/verifications/{first}/rerun")] {
        let anonymous = no_redirects()
            .post(server.url(path))
            .header("content-type", &content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401, "{path}");
    }
    // The API is as it was: JSON in, 202 and JSON out.
    let api = server
        .post("/v1/verifications")
        .json(&serde_json::json!({"output": "Sorry, I cannot help with that.", "task": "reset-conversation"}))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 202);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_and_the_diff_render_in_headless_chromium() {
    let Some(_) = docker().await else { return };
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), None, &["--workers", "1"]);
    server.wait_ready().await;
    let submitted = post_form(
        &server,
        "/verifications",
        form(
            &[
                ("task", "reset-conversation"),
                ("model", "magistral"),
                ("output", &fixture("magistral.md")),
            ],
            None,
        ),
    )
    .await;
    let id = followed(&server, submitted).await;
    let view = server.finished(&id).await;
    assert_eq!(view["result"]["tier"], 2, "{view}");

    let profile = dir.path().join("chromium");
    let page = rendered(
        &chromium,
        &profile,
        &server.url(&format!("/verifications/{id}")),
    )
    .await;
    assert_highlighted(&view, &page);
    assert!(
        page.contains("<tr class=\"changed\">") || page.contains("<tr class=\"added\">"),
        "{page}"
    );
    assert!(
        page.contains("<button type=\"submit\" id=\"rerun\">Re-run</button>"),
        "{page}"
    );

    let page = rendered(&chromium, &profile, &server.url("/")).await;
    assert!(page.contains("<form id=\"submit\" method=\"post\" action=\"/verifications\" enctype=\"multipart/form-data\">"), "{page}");
    assert!(
        page.contains("<option value=\"reset-conversation\">"),
        "{page}"
    );
    assert!(
        page.contains(&format!("href=\"/verifications/{id}\"")),
        "{page}"
    );
    server.stop();
}
