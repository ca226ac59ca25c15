//! Extraction's tests: every shape of answer, and the notes on what was dropped.

use super::*;

#[test]
fn definition_names_are_read_line_by_line_as_python_and_diffs_write_them() {
    let text = "class App(QMainWindow):\n    def init_ui(self):\n+    async def fetch(self):\n\tdef\ttabbed(x):\nclass_ = 1\ndefine = 2\n# def commented(self):\ndef 9bad():\n+class Added:\n  async  def  spaced():\nasyncdef nope():\ndef";
    let mut names: Vec<&str> = definition_names(text).into_iter().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        vec!["Added", "App", "fetch", "init_ui", "spaced", "tabbed"]
    );
}

const ORIGINAL: &str = "import sys\n\n\nclass App:\n    def init_ui(self):\n        self.x = 1\n\n    def submit(self):\n        pass\n\n\ndef main():\n    App()\n";

const FULL: &str = "import sys\n\n\nclass App:\n    def init_ui(self):\n        self.x = 1\n\n    def submit(self):\n        pass\n\n    def reset(self):\n        self.history = []\n\n\ndef main():\n    App()\n";

fn fenced(lang: &str, body: &str) -> String {
    format!("```{lang}\n{body}```\n")
}

#[test]
fn several_blocks_pick_the_one_covering_the_original() {
    let raw = format!(
        "Install first:\n{}Add this method:\n{}Here is the full script:\n{}Run it:\n{}",
        fenced("bash", "pip install PyQt5\n"),
        fenced("python", "def reset(self):\n    self.history = []\n    self.display.clear()\n    self.output.clear()\n    self.prompt.clear()\n"),
        fenced("python", FULL),
        fenced("", "python app.py\n"),
    );
    let got = extract(&raw, Some(ORIGINAL)).unwrap();
    assert_eq!(got.source, ScriptSource::FencedBlock);
    assert_eq!(got.block_index, Some(3));
    assert_eq!(got.script, FULL);
    assert!(got
        .notes
        .contains(&"block 1 (bash, 1 line) dropped: shell command".to_string()));
    assert!(got
        .notes
        .contains(&"block 4 (no language, 1 line) dropped: shell command".to_string()));
    assert!(got.notes.iter().any(|n| n
        .starts_with("block 2 (python, 5 lines) dropped: has 0 of the original's 4 definitions")));
}

#[test]
fn without_the_original_the_longest_block_wins() {
    let raw = format!("{}{}", fenced("py", FULL), fenced("python", "x = 1\n"));
    let got = extract(&raw, None).unwrap();
    assert_eq!(got.block_index, Some(1));
    assert!(got.notes[0].contains("shorter than block 1"));
}

#[test]
fn draft_code_in_the_thinking_is_never_chosen() {
    let raw = format!(
        "<think>\nThe user wants a button. Draft:\n{}Hmm, better keep everything.\n</think>\nHere it is:\n{}",
        fenced("python", FULL),
        fenced("python", "import sys\n\nclass App:\n    def init_ui(self):\n        self.y = 2\n"),
    );
    let got = extract(&raw, Some(ORIGINAL)).unwrap();
    assert!(got.script.contains("self.y = 2"));
    assert_eq!(got.block_index, Some(1));
    assert!(got
        .notes
        .iter()
        .any(|n| n == "reasoning (<think>) dropped: lines 1-22, with 1 draft code block"));
}

#[test]
fn inline_and_lone_closing_think_tags() {
    let inline = format!(
        "<think>plan the change</think>Here you go:\n{}",
        fenced("python", FULL)
    );
    let got = extract(&inline, Some(ORIGINAL)).unwrap();
    assert_eq!(got.script, FULL);
    let lone = format!(
        "thinking about it\n{}</think>\n{}",
        fenced("python", "x = 1\n"),
        fenced("python", FULL)
    );
    // A fence before the lone tag: the tag is not trusted, both blocks stay.
    assert_eq!(extract(&lone, Some(ORIGINAL)).unwrap().block_index, Some(2));
    let eaten = format!("so I need a button\n</think>\n{}", fenced("python", FULL));
    let got = extract(&eaten, Some(ORIGINAL)).unwrap();
    assert!(got.notes[0].contains("lone </think>"));
    assert_eq!(got.block_index, Some(1));
}

#[test]
fn unterminated_think_at_the_start_hides_everything() {
    let raw = format!("<thinking>\nlet me write it\n{}", fenced("python", FULL));
    assert_eq!(
        extract(&raw, Some(ORIGINAL)).unwrap_err(),
        ExtractError::NoCode
    );
}

#[test]
fn think_tags_inside_code_are_code() {
    let body = "import re\n\ndef strip(text):\n    return re.sub('<think>.*</think>', '', text)\n";
    let raw = format!("Here:\n{}", fenced("python", body));
    assert_eq!(extract(&raw, None).unwrap().script, body);
}

#[test]
fn no_fence_with_prose_around_is_unfenced() {
    let raw = format!("Here is the full refactored script, with the reset button added.\n\n{FULL}\nThis adds a button that clears the history.\n");
    let got = extract(&raw, Some(ORIGINAL)).unwrap();
    assert_eq!(got.source, ScriptSource::Unfenced);
    assert_eq!(got.script, FULL);
    assert!(got.notes[0].starts_with("no fence: code at lines 3-18"));
}

#[test]
fn plain_file_is_taken_whole_and_unchanged() {
    let file = "#!/usr/bin/env python3\n\"\"\"server.py - a small front end.\n\nPick a model, type a prompt and send it.\n\"\"\"\n\nimport sys\nfrom PyQt5.QtWidgets import (\n    QApplication,\n    QPushButton,\n)\n\nURL = \"http://localhost\"  # the server\n\n\nclass App:\n    def submit(self):\n        QMessageBox.warning(\n            self,\n            \"Large files\",\n        )\n\n\nif __name__ == \"__main__\":\n    App()\n";
    let got = extract(file, Some(ORIGINAL)).unwrap();
    assert_eq!(got.source, ScriptSource::WholeFile);
    assert_eq!(got.script, file);
    assert!(got.notes.is_empty());
    let tabs = "def f():\n\treturn 1\n";
    assert_eq!(extract(tabs, None).unwrap().script, tabs);
}

#[test]
fn crlf_cr_and_bom_are_normalised() {
    let raw = "\u{feff}```python\r\nimport sys\r\n\r\ndef main():\r\n    print(1)\r\n```\r\n";
    let got = extract(raw, None).unwrap();
    assert_eq!(got.script, "import sys\n\ndef main():\n    print(1)\n");
    let whole = extract("import sys\rprint(sys.argv)\r", None).unwrap();
    assert_eq!(whole.source, ScriptSource::WholeFile);
    assert_eq!(whole.script, "import sys\nprint(sys.argv)\n");
}

#[test]
fn diffs_fenced_untagged_and_bare() {
    let diff =
        "--- a/app.py\n+++ b/app.py\n@@ -1,3 +1,4 @@\n import sys\n+import os\n \n class App:\n";
    let tagged = format!(
        "Patch:\n{}Apply with:\n{}",
        fenced("diff", diff),
        fenced("bash", "git apply reset.diff\n")
    );
    let got = extract(&tagged, Some(ORIGINAL)).unwrap();
    assert_eq!(got.source, ScriptSource::Diff);
    assert_eq!((got.block_index, got.script.as_str()), (Some(1), diff));
    let untagged = fenced(
        "",
        "@@ -5,2 +5,3 @@\n     def init_ui(self):\n+        self.reset = 1\n         self.x = 1\n",
    );
    assert_eq!(extract(&untagged, None).unwrap().source, ScriptSource::Diff);
    let bare = format!("The change:\n\n{diff}\nThat is all.\n");
    let got = extract(&bare, None).unwrap();
    assert_eq!(
        (got.source, got.script.as_str()),
        (ScriptSource::Diff, diff)
    );
}

#[test]
fn prose_only_is_no_code() {
    let prose = "Sure! To add a reset button, create a QPushButton in init_ui and connect it.\n\n1. Empty the history list.\n2. Clear the text areas.\n";
    assert_eq!(extract(prose, None).unwrap_err(), ExtractError::NoCode);
    assert_eq!(extract("", None).unwrap_err(), ExtractError::NoCode);
    assert_eq!(extract("hello", None).unwrap_err(), ExtractError::NoCode);
    let shell_only = format!("Install:\n{}", fenced("bash", "pip install requests\n"));
    assert_eq!(
        extract(&shell_only, None).unwrap_err(),
        ExtractError::NoCode
    );
}

#[test]
fn unterminated_fence_runs_to_the_end() {
    let raw = "Here:\n~~~~python\nimport sys\n```\nprint(sys.argv)\n";
    let got = extract(raw, None).unwrap();
    assert_eq!(got.script, "import sys\n```\nprint(sys.argv)\n");
    assert!(got.notes[0].contains("no closing fence"));
}

#[test]
fn closing_fence_must_be_as_long_as_the_opening() {
    let raw = "````python\nx = '''\n```\n'''\n````\n";
    assert_eq!(extract(raw, None).unwrap().script, "x = '''\n```\n'''\n");
}

#[test]
fn indented_fence_in_a_list_loses_its_indent() {
    let raw = "1. Add:\n   ```python\n   def reset(self):\n       self.history = []\n   ```\n";
    assert_eq!(
        extract(raw, None).unwrap().script,
        "def reset(self):\n    self.history = []\n"
    );
}

#[test]
fn never_panics_on_garbage() {
    let huge = "(".repeat(100_000) + &"```".repeat(1000) + "\n\"\"\"\n";
    let inputs = [
        "\u{0}\u{1}```",
        "~~~~\n~~~\n",
        "````python\n```\n",
        "\u{feff}```",
        "```\n\n",
        "<think>",
        "</think>",
        "<think></think>",
        "\r\r\r",
        "@@\n+\n-",
        "é```é\n```ü",
        "\u{0}\u{0}\u{0}\ndef\nclass\n",
        huge.as_str(),
    ];
    for raw in inputs {
        let _ = extract(raw, Some(ORIGINAL));
        let _ = extract(raw, None);
    }
}

#[test]
fn large_answers_are_extracted() {
    let mut raw = String::from("Here it is:\n```python\n");
    for i in 0..20_000 {
        raw.push_str(&format!("    def method_{i}(self):\n        return {i}\n"));
    }
    raw.push_str("```\n");
    // Its time is a figure of `scripts/bench` (benches/static_grade.rs).
    let got = extract(&raw, Some(ORIGINAL)).unwrap();
    assert_eq!(got.source, ScriptSource::FencedBlock);
}
