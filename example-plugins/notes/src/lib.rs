//! `notes`: notes kept in the plugin's key-value store, offered as tools, as
//! `notes://note/<id>` resources and through a `summarize_notes` prompt.
//!
//! Build: `cargo xtask plugins`; run: `cargo xtask run`, then call `add_note` and, in a later
//! call, `list_notes`: every call runs in a fresh instance, so the notes coming back prove that
//! state lives in the store, not in memory.
//! Grants: none. Notes count against the plugin's key-value quota (`kv_quota_bytes`); a full
//! store is reported as a tool error.
//!
//! Layout: each note is JSON under `note/<id>`, the id zero-padded so that the store's byte
//! order is creation order; `meta/next-id` holds the next id.

use waygate_plugin_sdk::prelude::*;
use waygate_plugin_sdk::serde_json;

const NOTE_PREFIX: &str = "note/";
const NEXT_ID_KEY: &str = "meta/next-id";
const URI_PREFIX: &str = "notes://note/";
const MARKDOWN: &str = "text/markdown";
/// Ten digits keep byte order equal to numeric order far beyond what any quota can hold.
const ID_WIDTH: usize = 10;

/// A note as stored and as returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Note {
    /// The note's id, used by `delete_note` and in its `notes://note/<id>` URI.
    id: u64,
    /// Its title.
    title: String,
    /// Its text.
    body: String,
    /// Its tags, lowercased.
    #[serde(default)]
    tags: Vec<String>,
    /// When it was added (RFC 3339, UTC).
    created_at: String,
}

/// Arguments of `add_note`.
#[derive(Deserialize, JsonSchema)]
struct AddArgs {
    /// A short title; line breaks are turned into spaces.
    #[schemars(length(min = 1))]
    title: String,
    /// The note's text; Markdown is welcome.
    body: String,
    /// Labels to find the note by; stored lowercased, without duplicates.
    #[serde(default)]
    tags: Vec<String>,
}

/// Arguments of `list_notes`.
#[derive(Deserialize, JsonSchema)]
struct ListArgs {
    /// Only notes with this tag (case-insensitive).
    tag: Option<String>,
    /// At most this many notes, oldest first.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 1000))]
    limit: u32,
}

/// Arguments of `search_notes`.
#[derive(Deserialize, JsonSchema)]
struct SearchArgs {
    /// Text to look for, case-insensitively, in titles, bodies and tags.
    #[schemars(length(min = 1))]
    query: String,
    /// At most this many notes, oldest first.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 1000))]
    limit: u32,
}

/// Arguments of `delete_note`.
#[derive(Deserialize, JsonSchema)]
struct DeleteArgs {
    /// The id of the note to delete, as `add_note` or `list_notes` returned it.
    id: u64,
}

fn default_limit() -> u32 {
    50
}

/// What `add_note` returns.
#[derive(Serialize, JsonSchema)]
struct Added {
    /// The new note's id.
    id: u64,
    /// The URI of the note as a resource.
    uri: String,
}

/// What `list_notes` and `search_notes` return.
#[derive(Serialize, JsonSchema)]
struct NoteList {
    /// The notes, oldest first.
    notes: Vec<Note>,
    /// How many notes matched, including those past `limit`.
    total: usize,
}

/// What `delete_note` returns.
#[derive(Serialize, JsonSchema)]
struct Deleted {
    /// The deleted note's id.
    deleted: u64,
}

fn note_key(id: u64) -> String {
    format!("{NOTE_PREFIX}{id:0ID_WIDTH$}")
}

fn note_uri(id: u64) -> String {
    format!("{URI_PREFIX}{id}")
}

/// The id in a `notes://note/<id>` URI; leading zeros are accepted.
fn id_from_uri(uri: &str) -> Option<u64> {
    let id = uri.strip_prefix(URI_PREFIX)?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

/// One line, trimmed: a title is a heading, and a line break would end it.
fn clean_title(title: &str) -> String {
    title.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Trimmed, lowercased, without empty or repeated tags, in the order given.
fn clean_tags(tags: &[String]) -> Vec<String> {
    let mut clean: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = tag.trim().to_lowercase();
        if !tag.is_empty() && !clean.contains(&tag) {
            clean.push(tag);
        }
    }
    clean
}

impl Note {
    fn has_tag(&self, tag: &str) -> bool {
        let tag = tag.trim().to_lowercase();
        self.tags.contains(&tag)
    }

    /// Whether the lowercased `query` occurs in the title, the body or a tag.
    fn matches(&self, query: &str) -> bool {
        self.title.to_lowercase().contains(query)
            || self.body.to_lowercase().contains(query)
            || self.tags.iter().any(|t| t.contains(query))
    }

    fn markdown(&self) -> String {
        let mut text = format!(
            "# {}\n\n- id: {}\n- created: {}\n",
            self.title, self.id, self.created_at
        );
        if !self.tags.is_empty() {
            let tags: Vec<String> = self.tags.iter().map(|t| format!("`{t}`")).collect();
            text.push_str(&format!("- tags: {}\n", tags.join(", ")));
        }
        let body = self.body.trim_end();
        if !body.is_empty() {
            text.push('\n');
            text.push_str(body);
            text.push('\n');
        }
        text
    }

    fn resource(&self) -> Resource {
        let mut description = format!("Note {}", self.id);
        if !self.tags.is_empty() {
            description.push_str(&format!(", tagged {}", self.tags.join(", ")));
        }
        Resource {
            uri: note_uri(self.id),
            name: self.title.clone(),
            description: Some(description),
            mime_type: Some(MARKDOWN.to_owned()),
        }
    }
}

/// The first `limit` notes that pass `keep`, and how many passed in all.
fn select(notes: Vec<Note>, limit: u32, keep: impl Fn(&Note) -> bool) -> NoteList {
    let matching: Vec<Note> = notes.into_iter().filter(|n| keep(n)).collect();
    let total = matching.len();
    let notes = matching.into_iter().take(limit as usize).collect();
    NoteList { notes, total }
}

/// The user message of `summarize_notes`.
fn summary_request(notes: &[Note], tag: Option<&str>) -> String {
    let scope = match tag {
        Some(tag) => format!(" tagged \"{tag}\""),
        None => String::new(),
    };
    let count = match notes.len() {
        1 => "the following note".to_owned(),
        n => format!("the following {n} notes"),
    };
    let mut text = format!(
        "Summarize {count}{scope}. Group related points, keep every decision, date and open \
         question, and cite the note id each point comes from.\n"
    );
    for note in notes {
        text.push_str("\n---\n\n");
        text.push_str(&note.markdown());
    }
    text
}

/// `secs` since the Unix epoch as an RFC 3339 UTC timestamp, by Howard Hinnant's
/// days-to-civil algorithm (no date crate needed for one format).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// Every note, oldest first. A value that no longer decodes is skipped with a warning rather
/// than hiding every other note.
fn load_notes() -> Result<Vec<Note>, kv::Error> {
    // The quota bounds how many keys can exist, so no cap is needed here.
    let keys = kv::list_keys(NOTE_PREFIX, u32::MAX)?;
    let mut notes = Vec::with_capacity(keys.len());
    for key in keys {
        // A concurrent delete can remove a key between the listing and the read.
        let Some(bytes) = kv::get(&key)? else {
            continue;
        };
        match serde_json::from_slice::<Note>(&bytes) {
            Ok(note) => notes.push(note),
            Err(e) => log::warn(&format!(
                "skipping {key}: it does not decode as a note: {e}"
            )),
        }
    }
    Ok(notes)
}

fn load_note(id: u64) -> Result<Option<Note>, kv::Error> {
    match kv::get(&note_key(id))? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| kv::Error::Failed(format!("note {id} does not decode: {e}"))),
    }
}

/// A full store is the one failure the caller can fix, by deleting notes, so it comes back
/// as a tool error the model sees; other store failures fail the call.
fn store_error(error: kv::Error) -> CallResult {
    match error {
        kv::Error::QuotaExceeded(detail) => Ok(ToolResult::error(format!(
            "cannot save the note, the notes store is full ({detail}): delete notes to make room"
        ))),
        other => Err(other.into()),
    }
}

fn add_note(args: AddArgs) -> CallResult {
    let title = clean_title(&args.title);
    if title.is_empty() {
        return Err(CallError::InvalidArguments("title is empty".to_owned()));
    }
    let mut id = kv::get_json::<u64>(NEXT_ID_KEY)?.unwrap_or(1);
    // The store has no compare-and-set, so two concurrent adds can read the same counter;
    // stepping over an id already taken keeps the later one from overwriting the earlier.
    while kv::get(&note_key(id))?.is_some() {
        id += 1;
    }
    // The counter moves first: if the note then fails to save, an id is skipped, which is
    // harmless, whereas the other order could hand the same id out twice.
    if let Err(e) = kv::set_json(NEXT_ID_KEY, &(id + 1)) {
        return store_error(e);
    }
    let note = Note {
        id,
        title,
        body: args.body,
        tags: clean_tags(&args.tags),
        created_at: now(),
    };
    if let Err(e) = kv::set_json(&note_key(id), &note) {
        return store_error(e);
    }
    log::info_with("note added", &[("id", &id.to_string())]);
    Ok(ToolResult::json(Added {
        id,
        uri: note_uri(id),
    }))
}

fn delete_note(id: u64) -> CallResult {
    if kv::delete(&note_key(id))? {
        log::info_with("note deleted", &[("id", &id.to_string())]);
        Ok(ToolResult::json(Deleted { deleted: id }))
    } else {
        Ok(ToolResult::error(format!("no note has id {id}")))
    }
}

struct Notes;

impl Plugin for Notes {
    fn metadata() -> Metadata {
        Metadata::new(
            "notes",
            env!("CARGO_PKG_VERSION"),
            "Notes kept in the key-value store, as tools, resources and a prompt",
        )
        .author("Waygate")
        .capabilities(&["notes", "storage", "resources", "prompts"])
    }

    fn tools() -> Vec<Tool> {
        vec![
            Tool::new::<AddArgs>(
                "add_note",
                "Save a note with a title, a body and optional tags; returns its id",
            )
            .title("Add note")
            .output::<Added>(),
            Tool::new::<ListArgs>(
                "list_notes",
                "List saved notes, oldest first, optionally only those with a tag",
            )
            .title("List notes")
            .read_only()
            .output::<NoteList>(),
            Tool::new::<SearchArgs>(
                "search_notes",
                "Find notes whose title, body or tags contain the query, ignoring case",
            )
            .title("Search notes")
            .read_only()
            .output::<NoteList>(),
            Tool::new::<DeleteArgs>("delete_note", "Delete a note by id; this cannot be undone")
                .title("Delete note")
                .destructive()
                .idempotent()
                .output::<Deleted>(),
        ]
    }

    fn call(tool: &str, args: Arguments, _: &CallContext) -> CallResult {
        match tool {
            "add_note" => add_note(args.parse()?),
            "list_notes" => {
                let args = args.parse::<ListArgs>()?;
                let tag = args.tag.filter(|t| !t.trim().is_empty());
                let list = select(load_notes()?, args.limit, |note| {
                    tag.as_deref().is_none_or(|tag| note.has_tag(tag))
                });
                Ok(ToolResult::json(list))
            }
            "search_notes" => {
                let args = args.parse::<SearchArgs>()?;
                let query = args.query.trim().to_lowercase();
                if query.is_empty() {
                    return Err(CallError::InvalidArguments("query is empty".to_owned()));
                }
                let list = select(load_notes()?, args.limit, |note| note.matches(&query));
                Ok(ToolResult::json(list))
            }
            "delete_note" => delete_note(args.parse::<DeleteArgs>()?.id),
            _ => Err(CallError::unknown_tool(tool)),
        }
    }

    fn resources() -> Vec<Resource> {
        match load_notes() {
            Ok(notes) => notes.iter().map(Note::resource).collect(),
            Err(e) => {
                // The listing has no error channel; an empty list with a log line is the most
                // honest answer available.
                log::error(&format!("cannot list notes: {e}"));
                Vec::new()
            }
        }
    }

    fn read_resource(uri: &str) -> Result<Vec<ResourceContents>, ResourceError> {
        let id = id_from_uri(uri).ok_or_else(|| ResourceError::NotFound(uri.to_owned()))?;
        let note = load_note(id)?.ok_or_else(|| ResourceError::NotFound(uri.to_owned()))?;
        Ok(vec![ResourceContents::text(uri, MARKDOWN, note.markdown())])
    }

    fn prompts() -> Vec<Prompt> {
        vec![Prompt {
            name: "summarize_notes".to_owned(),
            description: Some(
                "Ask for a summary of the saved notes, optionally only those with a tag".to_owned(),
            ),
            arguments: vec![PromptArgument {
                name: "tag".to_owned(),
                description: Some("Only summarize notes with this tag".to_owned()),
                required: false,
            }],
        }]
    }

    fn get_prompt(name: &str, arguments: &[(String, String)]) -> Result<PromptResult, PromptError> {
        if name != "summarize_notes" {
            return Err(PromptError::NotFound(name.to_owned()));
        }
        let tag = arguments
            .iter()
            .find(|(key, _)| key == "tag")
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty());
        let notes: Vec<Note> = load_notes()
            .map_err(|e| PromptError::Failed(e.to_string()))?
            .into_iter()
            .filter(|note| tag.is_none_or(|tag| note.has_tag(tag)))
            .collect();
        if notes.is_empty() {
            return Err(match tag {
                Some(tag) => PromptError::InvalidArguments(format!("no notes are tagged {tag:?}")),
                None => PromptError::Failed("there are no notes to summarize".to_owned()),
            });
        }
        Ok(PromptResult {
            description: Some(match notes.len() {
                1 => "Summarize 1 note".to_owned(),
                n => format!("Summarize {n} notes"),
            }),
            messages: vec![PromptMessage {
                role: Role::User,
                content: Content::Text(summary_request(&notes, tag)),
            }],
        })
    }
}

export_plugin!(Notes);

#[cfg(test)]
mod tests {
    use super::*;

    fn note(id: u64, title: &str, body: &str, tags: &[&str]) -> Note {
        Note {
            id,
            title: title.to_owned(),
            body: body.to_owned(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            created_at: "2026-01-02T03:04:05Z".to_owned(),
        }
    }

    #[test]
    fn keys_sort_in_creation_order() {
        assert_eq!(note_key(7), "note/0000000007");
        let mut keys = [note_key(10), note_key(9), note_key(100)];
        keys.sort();
        assert_eq!(keys, [note_key(9), note_key(10), note_key(100)]);
    }

    #[test]
    fn uris_round_trip_and_reject_strangers() {
        assert_eq!(note_uri(42), "notes://note/42");
        assert_eq!(id_from_uri("notes://note/42"), Some(42));
        assert_eq!(id_from_uri("notes://note/0042"), Some(42));
        for bad in [
            "notes://note/",
            "notes://note/x",
            "notes://note/+1",
            "notes://other/1",
            "file:///etc",
        ] {
            assert_eq!(id_from_uri(bad), None, "{bad}");
        }
    }

    #[test]
    fn titles_and_tags_are_cleaned() {
        assert_eq!(clean_title("  Shopping\nlist \t now "), "Shopping list now");
        let tags = ["Work", " work ", "", "Ideas"].map(String::from);
        assert_eq!(clean_tags(&tags), ["work", "ideas"]);
    }

    #[test]
    fn search_ignores_case_across_title_body_and_tags() {
        let n = note(1, "Quarterly Plan", "Ship the Waygate beta", &["roadmap"]);
        assert!(n.matches("quarterly"));
        assert!(n.matches("waygate"));
        assert!(n.matches("road"));
        assert!(!n.matches("gamma"));
        assert!(n.has_tag(" ROADMAP "));
        assert!(!n.has_tag("road"));
    }

    #[test]
    fn select_counts_all_matches_but_returns_at_most_limit() {
        let notes = vec![
            note(1, "a", "", &["x"]),
            note(2, "b", "", &[]),
            note(3, "c", "", &["x"]),
        ];
        let list = select(notes, 1, |n| n.has_tag("x"));
        assert_eq!(list.total, 2);
        assert_eq!(list.notes.iter().map(|n| n.id).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn markdown_has_title_metadata_and_body() {
        let n = note(3, "Plan", "Line one\nLine two\n\n", &["work", "q3"]);
        assert_eq!(
            n.markdown(),
            "# Plan\n\n- id: 3\n- created: 2026-01-02T03:04:05Z\n- tags: `work`, `q3`\n\nLine one\nLine two\n"
        );
        let bare = note(4, "Empty", "  ", &[]);
        assert_eq!(
            bare.markdown(),
            "# Empty\n\n- id: 4\n- created: 2026-01-02T03:04:05Z\n"
        );
    }

    #[test]
    fn resources_point_at_their_note() {
        let r = note(5, "Plan", "", &["work"]).resource();
        assert_eq!(r.uri, "notes://note/5");
        assert_eq!(r.name, "Plan");
        assert_eq!(r.description.as_deref(), Some("Note 5, tagged work"));
        assert_eq!(r.mime_type.as_deref(), Some("text/markdown"));
    }

    #[test]
    fn summary_request_includes_every_note() {
        let notes = [
            note(1, "One", "first body", &[]),
            note(2, "Two", "second body", &["x"]),
        ];
        let text = summary_request(&notes, Some("x"));
        assert!(
            text.starts_with("Summarize the following 2 notes tagged \"x\"."),
            "{text}"
        );
        assert!(text.contains("# One") && text.contains("first body"));
        assert!(text.contains("# Two") && text.contains("second body"));
        assert!(summary_request(&notes[..1], None).starts_with("Summarize the following note."));
    }

    #[test]
    fn stored_notes_round_trip_and_tolerate_missing_tags() {
        let n = note(9, "t", "b", &["a"]);
        let bytes = serde_json::to_vec(&n).unwrap();
        assert_eq!(serde_json::from_slice::<Note>(&bytes).unwrap(), n);
        let old: Note =
            serde_json::from_str(r#"{"id":1,"title":"t","body":"b","created_at":"x"}"#).unwrap();
        assert!(old.tags.is_empty());
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn argument_defaults() {
        let list: ListArgs = serde_json::from_str("{}").unwrap();
        assert_eq!((list.tag, list.limit), (None, 50));
        let add: AddArgs = serde_json::from_str(r#"{"title": "t", "body": "b"}"#).unwrap();
        assert!(add.tags.is_empty());
    }
}
