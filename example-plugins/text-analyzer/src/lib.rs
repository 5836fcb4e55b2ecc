//! `text-analyzer`: counts, frequent terms and readability scores of a text; the API spec's
//! `analyze` command.
//!
//! Build: `cargo xtask plugins`; run: `cargo xtask run`, then call the `analyze` tool.
//! Grants: none. It touches nothing but its arguments.
//!
//! Everything is a heuristic tuned for English prose: a word is a run of letters and digits
//! (`don't`, `well-known` and `3.14` are one word each), a sentence ends at `.`, `!`, `?` or
//! `…` before a space or at a paragraph break, and syllables are counted from vowel groups.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use waygate_plugin_sdk::prelude::*;

/// Arguments of `analyze`.
#[derive(Deserialize, JsonSchema)]
struct AnalyzeArgs {
    /// The text to analyse.
    text: String,
    /// How many of the most frequent terms to return.
    #[serde(default = "default_top_n")]
    #[schemars(range(min = 1, max = 100))]
    top_n: u32,
}

fn default_top_n() -> u32 {
    10
}

/// A frequent term and how often it occurs.
#[derive(Debug, PartialEq, Serialize, JsonSchema)]
struct Term {
    /// The term, lowercased.
    term: String,
    /// How many times it occurs.
    count: usize,
}

/// What `analyze` returns.
#[derive(Debug, Serialize, JsonSchema)]
struct Analysis {
    /// Unicode characters, spaces included.
    characters: usize,
    /// Unicode characters other than whitespace.
    characters_no_spaces: usize,
    /// Words.
    words: usize,
    /// Sentences.
    sentences: usize,
    /// Paragraphs: blocks of text separated by blank lines.
    paragraphs: usize,
    /// Syllables, estimated.
    syllables: usize,
    /// Average letters and digits per word.
    average_word_length: f64,
    /// Average words per sentence.
    average_sentence_length: f64,
    /// Distinct words, ignoring case.
    unique_words: usize,
    /// The most frequent terms, common English stop words and numbers left out; most
    /// frequent first, ties in alphabetical order.
    top_terms: Vec<Term>,
    /// Flesch reading ease: about 90–100 is very easy, 60–70 plain English, below 30 very
    /// hard. Null for text without words.
    flesch_reading_ease: Option<f64>,
    /// Flesch–Kincaid grade: the US school grade needed to follow the text. Null for text
    /// without words.
    flesch_kincaid_grade: Option<f64>,
    /// Estimated reading time in seconds at 238 words per minute, rounded up.
    reading_time_seconds: u64,
}

/// Average silent reading speed of adults for non-fiction (Brysbaert, 2019).
const WORDS_PER_MINUTE: u64 = 238;

/// Analyses `text`, keeping the `top_n` most frequent terms.
fn analyze(text: &str, top_n: usize) -> Analysis {
    let words = words(text);
    let paragraphs = paragraphs(text);
    let sentences: usize = paragraphs.iter().map(|p| sentences(p)).sum();
    let syllables: usize = words.iter().map(|w| syllables(w)).sum();
    let letters: usize = words
        .iter()
        .map(|w| w.chars().filter(|c| c.is_alphanumeric()).count())
        .sum();

    let mut frequencies: BTreeMap<String, usize> = BTreeMap::new();
    let mut distinct = BTreeSet::new();
    for word in &words {
        let lower = word.to_lowercase().replace('’', "'");
        if let Some(term) = term(&lower) {
            *frequencies.entry(term.to_owned()).or_default() += 1;
        }
        distinct.insert(lower);
    }
    let mut top_terms: Vec<Term> = frequencies
        .into_iter()
        .map(|(term, count)| Term { term, count })
        .collect();
    // The map iterates alphabetically and the sort is stable, so ties stay alphabetical.
    top_terms.sort_by_key(|t| Reverse(t.count));
    top_terms.truncate(top_n);

    let (word_count, sentence_count) = (words.len(), sentences);
    let per_sentence = ratio(word_count, sentence_count);
    let per_word = ratio(syllables, word_count);
    let has_words = word_count > 0;
    Analysis {
        characters: text.chars().count(),
        characters_no_spaces: text.chars().filter(|c| !c.is_whitespace()).count(),
        words: word_count,
        sentences: sentence_count,
        paragraphs: paragraphs.len(),
        syllables,
        average_word_length: round2(ratio(letters, word_count)),
        average_sentence_length: round2(per_sentence),
        unique_words: distinct.len(),
        top_terms,
        flesch_reading_ease: has_words
            .then(|| round2(206.835 - 1.015 * per_sentence - 84.6 * per_word)),
        flesch_kincaid_grade: has_words
            .then(|| round2(0.39 * per_sentence + 11.8 * per_word - 15.59)),
        reading_time_seconds: (word_count as u64 * 60).div_ceil(WORDS_PER_MINUTE),
    }
}

/// `a / b`, or 0 when there is nothing to divide by.
fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Splits text into words: runs of letters and digits, joined across an apostrophe or a
/// hyphen between two of them (`don't`, `well-known`), or a period or comma between two
/// digits (`3.14`, `1,000`).
fn words(text: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut words = Vec::new();
    let mut start = None;
    for (i, &(at, c)) in chars.iter().enumerate() {
        let joins = start.is_some()
            && match (chars.get(i.wrapping_sub(1)), chars.get(i + 1)) {
                (Some(&(_, before)), Some(&(_, after))) => joins(before, c, after),
                _ => false,
            };
        if c.is_alphanumeric() || joins {
            start.get_or_insert(at);
        } else if let Some(from) = start.take() {
            words.push(&text[from..at]);
        }
    }
    if let Some(from) = start {
        words.push(&text[from..]);
    }
    words
}

fn joins(before: char, c: char, after: char) -> bool {
    match c {
        '\'' | '’' | '-' | '‐' => before.is_alphanumeric() && after.is_alphanumeric(),
        '.' | ',' => before.is_numeric() && after.is_numeric(),
        _ => false,
    }
}

/// Blocks of non-blank lines separated by blank ones.
fn paragraphs(text: &str) -> Vec<&str> {
    let mut paragraphs = Vec::new();
    let (mut start, mut end, mut offset) = (None, 0, 0);
    for line in text.split_inclusive('\n') {
        if line.trim().is_empty() {
            if let Some(from) = start.take() {
                paragraphs.push(&text[from..end]);
            }
        } else {
            start.get_or_insert(offset);
            end = offset + line.len();
        }
        offset += line.len();
    }
    if let Some(from) = start {
        paragraphs.push(&text[from..end]);
    }
    paragraphs
}

/// Sentences in one paragraph: a run of terminators followed by whitespace, or the end,
/// closes a sentence that has a letter or digit in it. The paragraph's end closes the last
/// one, so a heading without a period still counts.
fn sentences(paragraph: &str) -> usize {
    let mut count = 0;
    let mut open = false;
    let mut chars = paragraph.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() {
            open = true;
        } else if is_terminator(c) {
            while chars
                .next_if(|&n| is_terminator(n) || is_closer(n))
                .is_some()
            {}
            let at_boundary = chars.peek().is_none_or(|n| n.is_whitespace());
            if open && at_boundary {
                count += 1;
                open = false;
            }
        }
    }
    count + usize::from(open)
}

fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？')
}

/// Characters that may follow a sentence's terminator yet belong to it: `"Stop!" he said`.
fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | '”' | '’' | ')' | ']' | '»')
}

/// Estimates a word's syllables from its vowel groups, with the usual English corrections
/// for a silent final `e` (`make`, but not `table` or `agree`) and silent `-ed` and `-es`
/// endings (`jumped`, `hopes`, but not `wanted` or `boxes`). Numbers count as one.
fn syllables(word: &str) -> usize {
    let letters: Vec<char> = word
        .chars()
        .filter(|c| c.is_alphabetic())
        .flat_map(char::to_lowercase)
        .collect();
    if letters.len() <= 3 {
        return 1;
    }
    let vowel = |i: usize| match letters[i] {
        // A leading `y` is a consonant (`yes`); elsewhere it sounds as a vowel (`happy`).
        'y' => i > 0,
        c => "aeiouàáâäæãåāèéêëēėęîïíīįìôöòóœøōõûüùúū".contains(c),
    };
    let n = letters.len();
    let mut count = (0..n)
        .filter(|&i| vowel(i) && (i == 0 || !vowel(i - 1)))
        .count();

    let last = letters[n - 1];
    let before = letters[n - 2];
    let consonant_before = |i: usize| !vowel(i);
    let silent = match (before, last) {
        ('l', 'e') => !consonant_before(n - 3),
        (_, 'e') => consonant_before(n - 2),
        ('e', 'd') => !matches!(letters[n - 3], 't' | 'd'),
        ('e', 's') => {
            let ending = &letters[n - 4..n - 2];
            !matches!(letters[n - 3], 's' | 'x' | 'z' | 'c' | 'g')
                && ending != ['c', 'h']
                && ending != ['s', 'h']
        }
        _ => false,
    };
    if silent {
        count = count.saturating_sub(1);
    }
    count.max(1)
}

/// The term a lowercased word counts as, or none for stop words and numbers. A possessive
/// `'s` is dropped so that `rust's` counts as `rust`.
fn term(lower: &str) -> Option<&str> {
    if is_stop_word(lower) {
        return None;
    }
    let term = lower.strip_suffix("'s").unwrap_or(lower);
    let is_term = term.chars().any(char::is_alphabetic) && !is_stop_word(term);
    is_term.then_some(term)
}

fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.binary_search(&word).is_ok()
}

/// Common English function words, which top every frequency list and say nothing about the
/// text; sorted for binary search.
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "ain't",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "aren't",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "can't",
    "cannot",
    "could",
    "couldn't",
    "did",
    "didn't",
    "do",
    "does",
    "doesn't",
    "doing",
    "don't",
    "down",
    "during",
    "each",
    "either",
    "etc",
    "even",
    "ever",
    "every",
    "few",
    "for",
    "from",
    "further",
    "had",
    "hadn't",
    "has",
    "hasn't",
    "have",
    "haven't",
    "having",
    "he",
    "he'd",
    "he'll",
    "he's",
    "her",
    "here",
    "here's",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "how's",
    "i",
    "i'd",
    "i'll",
    "i'm",
    "i've",
    "if",
    "in",
    "into",
    "is",
    "isn't",
    "it",
    "it'd",
    "it'll",
    "it's",
    "its",
    "itself",
    "just",
    "let's",
    "may",
    "me",
    "might",
    "more",
    "most",
    "must",
    "mustn't",
    "my",
    "myself",
    "neither",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "ought",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "same",
    "shall",
    "shan't",
    "she",
    "she'd",
    "she'll",
    "she's",
    "should",
    "shouldn't",
    "so",
    "some",
    "such",
    "than",
    "that",
    "that's",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "there's",
    "these",
    "they",
    "they'd",
    "they'll",
    "they're",
    "they've",
    "this",
    "those",
    "through",
    "thus",
    "to",
    "too",
    "under",
    "until",
    "up",
    "upon",
    "us",
    "very",
    "was",
    "wasn't",
    "we",
    "we'd",
    "we'll",
    "we're",
    "we've",
    "were",
    "weren't",
    "what",
    "what's",
    "when",
    "when's",
    "where",
    "where's",
    "whether",
    "which",
    "while",
    "who",
    "who's",
    "whom",
    "whose",
    "why",
    "why's",
    "will",
    "with",
    "won't",
    "would",
    "wouldn't",
    "yet",
    "you",
    "you'd",
    "you'll",
    "you're",
    "you've",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

struct TextAnalyzer;

impl Plugin for TextAnalyzer {
    fn metadata() -> Metadata {
        Metadata::new(
            "text-analyzer",
            env!("CARGO_PKG_VERSION"),
            "Counts, frequent terms and readability scores of a text",
        )
        .author("Waygate")
        .capabilities(&["analyze", "text"])
    }

    fn tools() -> Vec<Tool> {
        vec![
            Tool::new::<AnalyzeArgs>(
                "analyze",
                "Analyse a text: character, word, sentence and paragraph counts, average word and \
                 sentence length, unique words, the most frequent terms (stop words left out), \
                 Flesch reading ease, Flesch-Kincaid grade and estimated reading time.",
            )
            .title("Analyze text")
            .read_only()
            .output::<Analysis>(),
        ]
    }

    fn call(tool: &str, args: Arguments, _: &CallContext) -> CallResult {
        match tool {
            "analyze" => {
                let args = args.parse::<AnalyzeArgs>()?;
                if !(1..=100).contains(&args.top_n) {
                    return Err(CallError::InvalidArguments(format!(
                        "top_n must be between 1 and 100, got {}",
                        args.top_n
                    )));
                }
                Ok(ToolResult::json(analyze(&args.text, args.top_n as usize)))
            }
            _ => Err(CallError::unknown_tool(tool)),
        }
    }
}

export_plugin!(TextAnalyzer);

#[cfg(test)]
mod tests {
    use super::*;
    use waygate_plugin_sdk::serde_json;

    #[test]
    fn words_keep_contractions_hyphens_and_numbers_whole() {
        assert_eq!(
            words("Don't stop—it's well-known: π≈3.14, not 1,000! (x - y)"),
            [
                "Don't",
                "stop",
                "it's",
                "well-known",
                "π",
                "3.14",
                "not",
                "1,000",
                "x",
                "y"
            ]
        );
        assert_eq!(words("end. 2. Next"), ["end", "2", "Next"]);
        assert!(words(" \n\t--- ").is_empty());
    }

    #[test]
    fn sentences_end_at_terminators_before_space_or_end() {
        assert_eq!(sentences("One. Two! Three? Four"), 4);
        assert_eq!(sentences("Pi is 3.14 exactly... Right?!"), 2);
        assert_eq!(sentences("\"Stop!\" he said. Done."), 3);
        assert_eq!(sentences("... !"), 0);
        assert_eq!(sentences("Unfinished thought"), 1);
    }

    #[test]
    fn paragraphs_are_separated_by_blank_lines() {
        let text = "\n\nTitle\n\nFirst line\nsame paragraph.\n   \n\nLast.";
        assert_eq!(
            paragraphs(text),
            ["Title\n", "First line\nsame paragraph.\n", "Last."]
        );
        assert!(paragraphs(" \n \n").is_empty());
    }

    #[test]
    fn syllable_heuristic_handles_common_cases() {
        let cases = [
            ("the", 1),
            ("cat", 1),
            ("make", 1),
            ("table", 2),
            ("whale", 1),
            ("agree", 2),
            ("reading", 2),
            ("beautiful", 3),
            ("syllable", 3),
            ("jumped", 1),
            ("wanted", 2),
            ("hopes", 1),
            ("boxes", 2),
            ("wishes", 2),
            ("yellow", 2),
            ("happy", 2),
            ("don't", 1),
            ("2024", 1),
            ("university", 5),
        ];
        for (word, expected) in cases {
            assert_eq!(syllables(word), expected, "{word}");
        }
    }

    #[test]
    fn empty_text_divides_by_nothing() {
        for text in ["", "   \n\n  ", "... --- !!!"] {
            let a = analyze(text, 10);
            assert_eq!((a.words, a.sentences, a.unique_words), (0, 0, 0));
            assert_eq!(a.average_word_length, 0.0);
            assert_eq!(a.average_sentence_length, 0.0);
            assert_eq!(a.flesch_reading_ease, None);
            assert_eq!(a.flesch_kincaid_grade, None);
            assert_eq!(a.reading_time_seconds, 0);
            assert!(a.top_terms.is_empty());
            let json = serde_json::to_value(&a).unwrap();
            assert!(json["flesch_reading_ease"].is_null());
        }
    }

    #[test]
    fn counts_a_small_text() {
        let text = "The cat sat on the mat. The cat was happy!\n\nDogs bark.";
        let a = analyze(text, 10);
        assert_eq!(a.characters, text.chars().count());
        assert_eq!(a.characters_no_spaces, 42);
        assert_eq!(a.words, 12);
        assert_eq!(a.sentences, 3);
        assert_eq!(a.paragraphs, 2);
        assert_eq!(a.unique_words, 9);
        assert_eq!(a.average_sentence_length, 4.0);
        assert_eq!(a.average_word_length, 3.25);
        assert_eq!(a.syllables, 13);
        assert_eq!(a.reading_time_seconds, 4);
        // 206.835 - 1.015 * 4 - 84.6 * 13 / 12 = 111.125
        let ease = a.flesch_reading_ease.unwrap();
        assert!((ease - 111.125).abs() <= 0.005, "{ease}");
        // 0.39 * 4 + 11.8 * 13 / 12 - 15.59 = -1.2467
        assert_eq!(a.flesch_kincaid_grade, Some(-1.25));
    }

    #[test]
    fn top_terms_skip_stop_words_and_break_ties_alphabetically() {
        let text = "Rust's compiler. The compiler and the borrow checker; rust, Rust! 42 42 42 zebra apple";
        let a = analyze(text, 4);
        let terms: Vec<(&str, usize)> = a
            .top_terms
            .iter()
            .map(|t| (t.term.as_str(), t.count))
            .collect();
        assert_eq!(
            terms,
            [("rust", 3), ("compiler", 2), ("apple", 1), ("borrow", 1)]
        );
    }

    #[test]
    fn reading_time_rounds_up_at_238_words_per_minute() {
        let text = "word ".repeat(238);
        assert_eq!(analyze(&text, 1).reading_time_seconds, 60);
        let text = "word ".repeat(239);
        assert_eq!(analyze(&text, 1).reading_time_seconds, 61);
    }

    #[test]
    fn stop_words_are_sorted_and_unique() {
        assert!(
            STOP_WORDS.windows(2).all(|w| w[0] < w[1]),
            "STOP_WORDS must be sorted"
        );
    }

    #[test]
    fn top_n_defaults_to_ten_and_is_bounded_in_the_schema() {
        let args: AnalyzeArgs = serde_json::from_str(r#"{"text": "x"}"#).unwrap();
        assert_eq!(args.top_n, 10);
        let schema = schemars::schema_for!(AnalyzeArgs).to_value();
        assert_eq!(schema["properties"]["top_n"]["minimum"], 1);
        assert_eq!(schema["properties"]["top_n"]["maximum"], 100);
        assert_eq!(schema["required"], json!(["text"]));
    }
}
