//! History kept on the model server rather than in the app: Ollama's
//! `/api/create` makes a model whose `messages` (or `system`, `template`,
//! a Modelfile, an uploaded blob) come before every chat with it, and
//! `/api/copy` names it again. An app that creates such a model from the
//! conversation and, after the reset, chats with it sends clean requests
//! whose model still holds the old turns. So what a store request carried
//! travels to every later request naming what it stored.

use serde_json::Value;

/// The paths that keep something on the server for later requests.
const STORE_PATHS: [&str; 4] = ["/api/create", "/api/copy", "/api/push", "/api/blobs/"];

/// The most names a run tracks (an app creating models in a loop is cut
/// off here; what it stored first is what is judged).
const MAX_STORED: usize = 64;

/// What the app stored on the server so far: (name or blob digest, the
/// turns, 1-based, it holds).
#[derive(Default)]
pub(super) struct ServerStore {
    stored: Vec<(String, Vec<usize>)>,
}

impl ServerStore {
    /// Reads `request` in order: a store request records the turns it
    /// carries (`carried`, every turn found in it, and what the names it
    /// refers to already held) under the names it stores; any request
    /// gets back the turns of the stored names its `model` names.
    /// Returns those turns, with the name they came through.
    pub(super) fn read(
        &mut self,
        request: &Value,
        whole_text: &str,
        carried: &[usize],
    ) -> Vec<(usize, String)> {
        let path = request["path"].as_str().unwrap_or("");
        let body = &request["body"];
        let named = [&body["model"], &body["name"], &body["source"]]
            .into_iter()
            .filter_map(Value::as_str)
            .flat_map(|name| self.turns_of(name))
            .collect::<Vec<_>>();
        let path = path.split('?').next().unwrap_or("");
        if STORE_PATHS
            .iter()
            .any(|p| path == *p || (p.ends_with('/') && path.starts_with(p)))
        {
            // A blob a create refers to by digest brings its turns along.
            let mut turns: Vec<usize> = carried.to_vec();
            let text = whole_text.to_ascii_lowercase().replace(':', "");
            for (key, held) in &self.stored {
                if key.starts_with("sha256") && text.contains(key.as_str()) {
                    turns.extend(held);
                }
            }
            turns.extend(named.iter().map(|(t, _)| *t));
            turns.sort_unstable();
            turns.dedup();
            let mut keys: Vec<String> = [&body["model"], &body["name"], &body["destination"]]
                .into_iter()
                .filter_map(Value::as_str)
                .map(model_key)
                .collect();
            if let Some(digest) = path.strip_prefix("/api/blobs/") {
                keys.push(digest.replace(':', "").to_ascii_lowercase());
            }
            for key in keys {
                if self.stored.len() < MAX_STORED && !turns.is_empty() {
                    self.stored.push((key, turns.clone()));
                }
            }
            return Vec::new();
        }
        named
    }

    /// The turns stored under `name` (`llama3` and `llama3:latest` alike).
    fn turns_of(&self, name: &str) -> Vec<(usize, String)> {
        let key = model_key(name);
        self.stored
            .iter()
            .filter(|(k, _)| *k == key)
            .flat_map(|(k, turns)| turns.iter().map(move |&t| (t, k.clone())))
            .collect()
    }
}

/// A model's name as Ollama resolves it: without `:latest`, in lower case.
fn model_key(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    name.strip_suffix(":latest").unwrap_or(&name).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_model_created_from_the_conversation_carries_it_to_later_chats() {
        let mut store = ServerStore::default();
        let create = json!({"path": "/api/create", "body": {"model": "Session", "from": "llama3", "messages": []}});
        assert!(store.read(&create, "", &[1, 2]).is_empty());
        let chat =
            json!({"path": "/api/chat", "body": {"model": "session:latest", "messages": []}});
        let back = store.read(&chat, "", &[]);
        assert_eq!(back.iter().map(|(t, _)| *t).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(back[0].1, "session");
        // A copy names it again; the original model names nothing.
        let copy =
            json!({"path": "/api/copy", "body": {"source": "session", "destination": "other"}});
        store.read(&copy, "", &[]);
        let chat = json!({"path": "/api/generate", "body": {"model": "other"}});
        assert_eq!(store.read(&chat, "", &[]).len(), 2);
        let plain = json!({"path": "/api/chat", "body": {"model": "llama3"}});
        assert!(store.read(&plain, "", &[]).is_empty());
    }

    #[test]
    fn a_blob_uploaded_then_named_by_a_create_counts_too() {
        let mut store = ServerStore::default();
        let blob = json!({"path": "/api/blobs/sha256:ABC123", "body": null});
        store.read(&blob, "", &[1]);
        let create = json!({"path": "/api/create", "body": {"model": "m", "files": {"a.gguf": "sha256:abc123"}}});
        store.read(&create, "{\"files\": {\"a.gguf\": \"sha256:abc123\"}}", &[]);
        let chat = json!({"path": "/api/chat", "body": {"model": "m"}});
        assert_eq!(store.read(&chat, "", &[]).len(), 1);
    }
}
