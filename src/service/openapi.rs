//! The OpenAPI 3 document of the routes (`/openapi.json`): routes,
//! parameters, errors and job views written here; the result and every
//! type inside it generated from the Rust types it is serialised from.

use axum::Json;
use serde_json::{json, Value};

use crate::render::{CompareFormat, Format};
use crate::service::callbacks;
use crate::service::limits::MAX_WAIT;
use crate::verify::Verification;

pub(super) async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

/// The OpenAPI 3 description of `router`'s routes (a test checks that
/// every path here is routed).
pub fn openapi_document() -> Value {
    let mut document = hand_written_openapi();
    // The result, with every type inside it, is generated from the Rust
    // types it is serialised from, so the document cannot drift from them.
    let mut generator = schemars::gen::SchemaSettings::openapi3().into_generator();
    generator.subschema_for::<Verification>();
    for (name, schema) in generator.take_definitions() {
        document["components"]["schemas"][name] = serde_json::to_value(schema).unwrap_or_default();
    }
    document
}

/// The routes, parameters, errors and job views; `Result` is added from the types.
fn hand_written_openapi() -> Value {
    let error = json!({"$ref": "#/components/schemas/Error"});
    let error_response = |description: &str| json!({"description": description, "content": {"application/json": {"schema": error}}});
    let id_param =
        json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}});
    let wait_param = json!({"name": "wait", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0}, "description": format!("seconds to hold the request for the result, capped at {} (also `Prefer: wait=N`)", MAX_WAIT.as_secs())});
    let pass_at_param = json!({"name": "pass_at", "in": "query", "required": false, "schema": {"type": "string", "pattern": "^[0-9]+(,[0-9]+)*$"},
        "description": "the k of each pass@k of the leaderboard, comma-separated, from 1 to 10000, at most 16 (default `1`)"});
    // A finished report: a media type per format, JSON's with its schema.
    let reports = |json_schema: Value| {
        let mut content = serde_json::Map::new();
        for format in Format::ALL {
            let media_type = format.media_type().split(';').next().unwrap_or_default();
            content.insert(media_type.into(), json!({}));
        }
        content.insert("application/json".into(), json!({"schema": json_schema}));
        content
    };
    // A batch's (`json` is `{results, leaderboard}`).
    let report_content = reports(
        json!({"anyOf": [{"$ref": "#/components/schemas/Batch"}, {"type": "object", "required": ["results", "leaderboard"], "properties": {
        "results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}}, "leaderboard": {"type": "object"}}}]}),
    );
    // One verification's (`json` is its result).
    let result_content = reports(
        json!({"anyOf": [{"$ref": "#/components/schemas/Verification"}, {"$ref": "#/components/schemas/Result"}]}),
    );
    // A comparison's (`json`: `{a, b, comparison}`).
    let mut compare_content = serde_json::Map::new();
    for format in CompareFormat::ALL {
        let media_type = format.media_type().split(';').next().unwrap_or_default();
        compare_content.insert(media_type.into(), json!({}));
    }
    compare_content.insert(
        "application/json".into(),
        json!({"schema": {"$ref": "#/components/schemas/Comparison"}}),
    );
    let common_errors = json!({
        "400": error_response("malformed JSON or wrong types"),
        "401": error_response("missing or wrong bearer token (when the service has one)"),
        "408": error_response("the body did not arrive within --body-timeout-secs"),
        "414": error_response("the request target is over 8 KiB"),
        "431": error_response("more than 64 headers or 32 KiB of them"),
    });
    let with = |mut responses: Value, extra: Value| {
        for (k, v) in extra.as_object().into_iter().flatten() {
            responses[k] = v.clone();
        }
        for (k, v) in common_errors.as_object().into_iter().flatten() {
            responses[k] = v.clone();
        }
        responses
    };
    // What the service POSTs to a `callback_url` (OpenAPI's callbacks).
    let callback = |event: &str, schema: &str| {
        let header = |name: &str, description: &str| json!({"name": name, "in": "header", "required": true, "schema": {"type": "string"}, "description": description});
        json!({"post": {
            "summary": format!("`{event}`: once finished, the same JSON as the GET of it"),
            "parameters": [
                header("X-Qtjudge-Event", event),
                header("X-Qtjudge-Delivery", "the delivery's id, the same on every attempt (dedupe on it)"),
                header("X-Qtjudge-Timestamp", "Unix seconds of this attempt"),
                {"name": "X-Qtjudge-Signature", "in": "header", "required": false, "schema": {"type": "string"},
                 "description": "with --callback-secret: `sha256=` + hex HMAC-SHA256 of `<timestamp>.<body>`"}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}},
            "responses": {"2XX": {"description": "delivered. 408, 429, 5xx or no answer within 10 s: retried with backoff (1 s, 2 s, 4 s … 5 min, --callback-attempts); any other status: given up"}}}})
    };
    json!({
        "openapi": "3.0.3",
        "info": {"title": "qtjudge verifier service", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Verifies LLM-written refactorings of a PyQt5 app by running them in a locked-down sandbox, and grades them into three tiers."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "message"], "properties": {
                    "error": {"type": "string", "enum": ["bad_request", "unauthorized", "not_found", "no_such_route", "too_large", "unknown_task", "empty_output", "empty_batch", "duplicate_sample", "invalid_callback_url", "queue_full", "engine_unavailable", "store_unavailable", "shutting_down", "internal",
                        "output_and_archive", "entry_without_archive", "unsafe_archive_path", "archive_special_file", "archive_too_many_files", "archive_too_large", "bad_archive", "bad_notebook", "no_python_file", "entry_not_found", "no_entry_point", "ambiguous_entry_point", "unreadable_input"]},
                    "message": {"type": "string"}}},
                "VerificationRequest": {"type": "object", "additionalProperties": false,
                    "description": "exactly one of `output` (a raw answer) and `archive_base64` (an app)",
                    "properties": {
                    "output": {"type": "string", "minLength": 1, "pattern": "\\S", "description": "the model's raw answer (not blank)"},
                    "archive_base64": {"type": "string", "description": "an app: a .zip, .tar.gz or .ipynb, base64-encoded (at most --max-body-kb decoded; 256 files and 8 MiB unpacked; no `..`, absolute names, links or devices)"},
                    "archive_name": {"type": "string", "description": "the archive's file name (`app.zip`, `app.tar.gz`, `chat.ipynb`); its kind is sniffed when absent"},
                    "entry": {"type": "string", "description": "the app's file run as `__main__`; default: the one with an `if __name__ == \"__main__\":` guard"},
                    "task": {"type": "string", "description": "default: the task whose original the answer resembles, else `generic-reset`"},
                    "model": {"type": "string", "description": "a label for reports"},
                    "sample": {"oneOf": [{"type": "string"}, {"type": "integer", "minimum": 0}], "description": "which of the model's answers to the task this is"},
                    "metadata": {"type": "object", "description": "echoed back, and carried into the result"},
                    "callback_url": {"type": "string", "format": "uri", "description": "absolute http(s) URL; the finished verification is POSTed there"}}},
                "Callback": {"type": "object", "description": "the delivery to the `callback_url` (pending until the receiver took it)", "properties": {
                    "url": {"type": "string"}, "state": {"type": "string", "enum": ["pending", "delivered", "failed"]},
                    "attempts": {"type": "integer"}, "last_error": {"type": "string", "nullable": true}}},
                "BatchItem": {"type": "object", "additionalProperties": false,
                    "description": "exactly one of `output` (a raw answer) and `archive_base64` (an app), checked as in a VerificationRequest",
                    "properties": {
                    "model": {"type": "string"}, "output": {"type": "string", "minLength": 1, "pattern": "\\S"},
                    "task": {"type": "string", "description": "this answer's task (over the query's `task`)"},
                    "sample": {"oneOf": [{"type": "string"}, {"type": "integer", "minimum": 0}], "description": "which of the model's answers to the task this is; default: numbered in order when the model has several (answers are keyed by model, task and sample)"},
                    "id": {"oneOf": [{"type": "string"}, {"type": "integer", "minimum": 0}], "description": "`sample`'s other name"},
                    "archive_base64": {"type": "string", "description": "an app: a .zip, .tar.gz or .ipynb, base64-encoded (limits as in a VerificationRequest)"},
                    "archive_name": {"type": "string", "description": "the archive's file name; its kind is sniffed when absent"},
                    "entry": {"type": "string", "description": "the app's file run as `__main__`; default: the one with a `__main__` guard"},
                    "metadata": {"type": "object"}}},
                "Comparison": {"type": "object", "required": ["a", "b", "comparison"], "properties": {
                    "a": {"type": "string"}, "b": {"type": "string"},
                    "comparison": {"type": "object", "description": "{resamples, seed, unchanged, changed: [{key, old, new, direction, reason}], only_in_a, only_in_b, models, by_task}; a line per model (and model × task) with n_a, n_b, paired, method (`paired_bootstrap`, `newcombe` or `none`), pass and tier1: {a, b, delta, low, high, only_a, only_b, mcnemar_p} (README: Comparing runs)"}}},
                "ComparisonPending": {"type": "object", "required": ["status", "running", "a", "b", "message"],
                    "description": "a comparison asked for while either batch is not finished",
                    "properties": {
                    "status": {"type": "string", "enum": ["queued", "running"]},
                    "running": {"type": "array", "items": {"type": "string"}, "description": "the ids of the batches not finished yet"},
                    "a": {"$ref": "#/components/schemas/BatchProgress"}, "b": {"$ref": "#/components/schemas/BatchProgress"},
                    "message": {"type": "string"}}},
                "BatchProgress": {"type": "object", "required": ["id", "status", "total", "finished"], "properties": {
                    "id": {"type": "string"}, "status": {"$ref": "#/components/schemas/Status"},
                    "total": {"type": "integer", "minimum": 0}, "finished": {"type": "integer", "minimum": 0, "description": "answers done or ended in error"}}},
                "Accepted": {"type": "object", "properties": {
                    "id": {"type": "string"}, "status": {"type": "string"}, "total": {"type": "integer"},
                    "links": {"type": "object", "properties": {"self": {"type": "string"}}}}},
                "Status": {"type": "string", "enum": ["queued", "running", "done", "error"]},
                "Verification": {"type": "object", "properties": {
                    "id": {"type": "string"}, "status": {"$ref": "#/components/schemas/Status"},
                    "task": {"type": "string"}, "model": {"type": "string"},
                    "sample": {"type": "string", "nullable": true},
                    "task_choice": {"allOf": [{"$ref": "#/components/schemas/TaskChoice"}], "nullable": true, "description": "why `task` was chosen: given, or the answer resembled its original, or the default `generic-reset`"},
                    "metadata": {"type": "object", "nullable": true}, "batch_id": {"type": "string", "nullable": true},
                    "created_at": {"type": "string", "format": "date-time"},
                    "started_at": {"type": "string", "format": "date-time", "nullable": true},
                    "finished_at": {"type": "string", "format": "date-time", "nullable": true},
                    "error": {"type": "string", "nullable": true},
                    "attempts": {"type": "integer", "description": "times a worker started it (a graceful stop that interrupts it does not count); after 3 runs the engine failed or a crash cut short, it ends as error"},
                    "result": {"allOf": [{"$ref": "#/components/schemas/Result"}], "nullable": true},
                    "callback": {"allOf": [{"$ref": "#/components/schemas/Callback"}], "nullable": true},
                    "links": {"type": "object"}}},
                "Batch": {"type": "object", "properties": {
                    "id": {"type": "string"}, "status": {"$ref": "#/components/schemas/Status"},
                    "task": {"type": "string", "description": "the task given, else the tasks chosen for its answers (comma-separated; each verification names its own)"},
                    "total": {"type": "integer"}, "progress": {"type": "object"},
                    "counts": {"type": "object", "properties": {"tier1": {"type": "integer"}, "tier2": {"type": "integer"}, "tier3": {"type": "integer"}, "error": {"type": "integer"}}},
                    "leaderboard": {"type": "object", "description": "of the answers finished so far: {pass_at, tasks, models, by_task}, a row per model (and model × task) with n, tier counts, tier1_rate and pass_rate with 95% Wilson intervals, pass_at, failures and median_ms (README: The leaderboard)"},
                    "verifications": {"type": "array", "items": {"type": "object", "description": "id, model, sample, task, task_choice, status, tier, label, failure, reason, links"}},
                    "table": {"type": "string", "nullable": true},
                    "callback": {"allOf": [{"$ref": "#/components/schemas/Callback"}], "nullable": true},
                    "links": {"type": "object"}}}
            }
        },
        "paths": {
            "/v1/verifications": {"post": {
                "summary": "verify one answer", "security": [{"bearer": []}],
                "parameters": [wait_param],
                "requestBody": {"required": true, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/VerificationRequest"}},
                    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                        "file": {"type": "string", "format": "binary", "description": "a raw answer (.py, .md, .txt) or an app (.zip, .tar.gz, .ipynb), told apart by the file name"},
                        "entry": {"type": "string"}, "task": {"type": "string"}, "model": {"type": "string"}, "sample": {"type": "string"},
                        "metadata": {"type": "string", "description": "a JSON object"}, "callback_url": {"type": "string"}}}}}},
                "responses": with(json!({
                    "200": {"description": "finished within the wait", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Verification"}}}},
                    "202": {"description": "accepted (on disk); poll the Location", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}},
                }), json!({
                    "413": error_response("the body, the answer or `metadata` (64 KiB) is over the limit"),
                    "422": error_response("unknown task, empty answer, `model`/`entry`/`archive_name` over 256 characters (`field_too_long`), an app refused (unsafe or unreadable archive, no or ambiguous entry point: see `error`) or a `callback_url` that is not an absolute http(s) URL"),
                    "429": error_response("the queue is full; see Retry-After"),
                    "503": error_response("the sandbox engine is unreachable, or the service is stopping"),
                })),
                "callbacks": {"finished": {"{$request.body#/callback_url}": callback(callbacks::VERIFICATION_FINISHED, "Verification")}}}},
            "/v1/verifications/{id}": {"get": {
                "summary": "a verification's status and result", "security": [{"bearer": []}],
                "parameters": [id_param, {"name": "format", "in": "query", "required": false, "schema": {"type": "string", "enum": Format::accepted_names()}, "description": "the result as a report in this format (as `qtjudge verify --format`); 202 with the status while it runs"}],
                "responses": with(json!({
                    "200": {"description": "the verification, or its result in the format asked", "content": result_content},
                    "202": {"description": "a format was asked and it has not finished: its status", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Verification"}}}}}),
                    json!({"400": error_response("an unknown `format`"), "404": error_response("unknown id")}))}},
            "/v1/verifications/{id}/artifacts/{name}": {"get": {
                "summary": "a screenshot of the run, read from outside the app (before_reset.png, after_reset.png, final.png)", "security": [{"bearer": []}],
                "parameters": [id_param, {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": with(json!({"200": {"description": "the file", "content": {"image/png": {}}}}),
                    json!({"404": error_response("unknown id or artifact")}))}},
            "/v1/batches": {"post": {
                "summary": "verify many answers", "security": [{"bearer": []}],
                "parameters": [{"name": "task", "in": "query", "required": false, "schema": {"type": "string"},
                     "description": "the task of every answer; default: each answer's own, the task whose original it resembles, else `generic-reset` (each verification's `task_choice` says which and why)"},
                    {"name": "callback_url", "in": "query", "required": false, "schema": {"type": "string", "format": "uri"},
                     "description": "absolute http(s) URL; the batch is POSTed there once all its answers are finished"}],
                "requestBody": {"required": true, "content": {
                    "application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/BatchItem"}}},
                    "application/jsonl": {"schema": {"$ref": "#/components/schemas/BatchItem"}}}},
                "responses": with(json!({"202": {"description": "accepted (on disk)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}}}),
                    json!({
                        "413": error_response("the body, an answer, an answer's `metadata`, the number of answers or what the apps declare they unpack to (--max-batch-unpacked-mb) is over the limit"),
                        "422": error_response("unknown task, empty batch, an empty answer, an app refused (the same codes as POST /v1/verifications; the message names the answer) or a `callback_url` that is not an absolute http(s) URL"),
                        "429": error_response("the queue has no room for the batch; see Retry-After"),
                        "503": error_response("the sandbox engine is unreachable, or the service is stopping"),
                    })),
                "callbacks": {"finished": {"{$request.query.callback_url}": callback(callbacks::BATCH_FINISHED, "Batch")}}}},
            "/v1/batches/{id}": {"get": {
                "summary": "a batch's progress and, when done, its table", "security": [{"bearer": []}],
                "parameters": [id_param, wait_param,
                    {"name": "format", "in": "query", "required": false, "schema": {"type": "string", "enum": Format::accepted_names()}},
                    pass_at_param],
                "responses": with(json!({
                    "200": {"description": "the batch (JSON), or its report in `format` once done (`json`: `{results, leaderboard}`)", "content": report_content},
                    "202": {"description": "`format` asked for but the batch is not done: its progress", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Batch"}}}},
                }), json!({"404": error_response("unknown id")}))}},
            "/v1/batches/{id}/compare/{other}": {"get": {
                "summary": "batch `id` (A) against batch `other` (B) once both are finished, answers matched by (model, task, sample): verdicts changed, answers only in one, and per model (and model × task) the pass and tier-1 rates with the change B − A and its 95% interval (as `qtjudge compare`); 202 while either runs", "security": [{"bearer": []}],
                "parameters": [id_param, {"name": "other", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "format", "in": "query", "required": false, "schema": {"type": "string", "enum": CompareFormat::ALL.iter().map(|f| f.name()).collect::<Vec<_>>()}, "description": "default `json`"}],
                "responses": with(json!({
                    "200": {"description": "the comparison in `format`", "content": compare_content},
                    "202": {"description": "either batch is not finished: which, and how many of its answers are; ask again after Retry-After",
                        "headers": {"Retry-After": {"required": true, "schema": {"type": "integer", "minimum": 1}, "description": "seconds until it is worth asking again"}},
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ComparisonPending"}}}}}),
                    json!({"400": error_response("an unknown `format`"), "404": error_response("either batch is unknown")}))}},
            "/v1/tasks": {"get": {
                "summary": "the tasks answers can be verified against", "security": [{"bearer": []}],
                "responses": with(json!({"200": {"description": "tasks", "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}}}}), json!({}))}},
            "/": {"get": {"summary": "HTML: recent verifications and batches (Basic auth: any user, the token as password)",
                "responses": {"200": {"description": "page", "content": {"text/html": {}}}}}},
            "/verifications/{id}": {"get": {"summary": "HTML: one verification: steps, changes, missing pieces, screenshots, script",
                "parameters": [id_param],
                "responses": {"200": {"description": "page", "content": {"text/html": {}}}, "404": error_response("unknown id")}}},
            "/batches/{id}": {"get": {"summary": "HTML: a batch as the experiment's table (a task column when its answers span several tasks), with counts, its leaderboard and a chart per tier",
                "parameters": [id_param, pass_at_param],
                "responses": {"200": {"description": "page", "content": {"text/html": {}}}, "400": error_response("a malformed `pass_at`"), "404": error_response("unknown id")}}},
            "/healthz": {"get": {"summary": "engine reachable, image ready, store reachable, queue depth (always 200)",
                "responses": {"200": {"description": "health", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                "responses": {"200": {"description": "text exposition format", "content": {"text/plain": {}}}}}},
            "/openapi.json": {"get": {"summary": "this document",
                "responses": {"200": {"description": "OpenAPI 3", "content": {"application/json": {}}}}}}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The result schema comes from the Rust types, and every `$ref` in
    /// the document points at a schema it defines.
    #[test]
    fn the_openapi_result_schema_is_generated_and_every_ref_resolves() {
        let document = openapi_document();
        let schemas = &document["components"]["schemas"];
        let result = &schemas["Result"]["properties"];
        for field in [
            "tier",
            "label",
            "failure",
            "history_cleared",
            "steps",
            "artifacts",
            "behaviour",
            "static",
        ] {
            assert!(
                result.get(field).is_some(),
                "Result lacks {field}: {result}"
            );
        }
        assert!(schemas["Behaviour"]["properties"]
            .get("screen_check")
            .is_some());
        fn refs(value: &Value, found: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        found.push(r.clone());
                    }
                    map.values().for_each(|v| refs(v, found));
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        refs(&document, &mut found);
        assert!(found.len() > 10);
        for r in found {
            let name = r
                .strip_prefix("#/components/schemas/")
                .expect("a local ref");
            assert!(schemas.get(name).is_some(), "dangling $ref {r}");
        }
    }
}
