//! Finds the line of a key in a YAML file, for problems found after the file parsed (a value
//! that is fine on its own but wrong next to another). The parser already gives lines for
//! everything it rejects; this covers the rest. It understands the block style the
//! configuration files are written in; anything else yields `None`, and the message goes
//! out without a line rather than with a wrong one.

/// The 1-based line of the key at `path` (e.g. `["max", "shm_rate"]`).
pub fn line_of_key(text: &str, path: &[&str]) -> Option<usize> {
    let text = crate::store::text_file::strip_bom(text);
    // (indentation, key) of the mapping keys enclosing the current line.
    let mut stack: Vec<(usize, String)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let content = strip_comment(line);
        if content.trim().is_empty() {
            continue;
        }
        let indent = content.len() - content.trim_start().len();
        let trimmed = content.trim_start();
        let Some(key) = key_of(trimmed) else {
            continue;
        };
        while stack.last().is_some_and(|(depth, _)| *depth >= indent) {
            stack.pop();
        }
        stack.push((indent, key));
        if stack.len() == path.len() && stack.iter().zip(path).all(|((_, key), wanted)| key == wanted) {
            return Some(index + 1);
        }
    }
    None
}

/// The 1-based line of the second key `key` at any depth (a mapping key written twice).
pub fn line_of_second_key(text: &str, key: &str) -> Option<usize> {
    crate::store::text_file::strip_bom(text)
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            let content = strip_comment(line).trim_start();
            key_of(content).is_some_and(|found| found == key)
        })
        .nth(1)
        .map(|(index, _)| index + 1)
}

/// The 1-based line of the entry `item` in the block list under the top-level key
/// `section` (`allow_userIDs:` followed by `  - alice`).
pub fn line_of_item(text: &str, section: &str, item: &str) -> Option<usize> {
    let start = line_of_key(text, &[section])?;
    for (index, line) in text.lines().enumerate().skip(start) {
        let content = strip_comment(line).trim();
        if content.is_empty() {
            continue;
        }
        let entry = content.strip_prefix('-')?.trim();
        if entry.trim_matches(|quote| quote == '"' || quote == '\'') == item {
            return Some(index + 1);
        }
    }
    None
}

/// The lines of every key and of every item of one list, found in one pass, for looking up
/// many (`enroll check` names a line for each of hundreds of users; asking [`line_of_key`]
/// for each would read the file once per user). Each answer is [`line_of_key`]'s and
/// [`line_of_item`]'s.
#[derive(Debug, Default)]
pub struct LineIndex {
    /// Key path (joined by NUL) → its first line.
    keys: std::collections::HashMap<String, usize>,
    /// Item → its first line, in the list under the section given.
    items: std::collections::HashMap<String, usize>,
}

impl LineIndex {
    /// Indexes `text`'s keys, and the items of the block list under the top-level key
    /// `section` (if any).
    pub fn new(text: &str, section: Option<&str>) -> LineIndex {
        let mut index = LineIndex::default();
        let mut stack: Vec<(usize, String)> = Vec::new();
        // Lines of the list under `section`: from its key's line until a line that is not an item.
        let mut in_items = false;
        for (number, line) in text.lines().enumerate() {
            let content = strip_comment(line);
            if content.trim().is_empty() {
                continue;
            }
            if in_items {
                match content.trim().strip_prefix('-') {
                    Some(entry) => {
                        let entry = entry.trim().trim_matches(|quote| quote == '"' || quote == '\'').to_string();
                        index.items.entry(entry).or_insert(number + 1);
                    }
                    None => in_items = false,
                }
            }
            let indent = content.len() - content.trim_start().len();
            let Some(key) = key_of(content.trim_start()) else {
                continue;
            };
            while stack.last().is_some_and(|(depth, _)| *depth >= indent) {
                stack.pop();
            }
            stack.push((indent, key));
            let path: Vec<&str> = stack.iter().map(|(_, key)| key.as_str()).collect();
            let first_seen = !index.keys.contains_key(&path.join("\0"));
            if first_seen {
                index.keys.insert(path.join("\0"), number + 1);
                if section.is_some_and(|section| path == [section]) {
                    in_items = true;
                }
            }
        }
        index
    }

    pub fn key(&self, path: &[&str]) -> Option<usize> {
        self.keys.get(&path.join("\0")).copied()
    }

    pub fn item(&self, item: &str) -> Option<usize> {
        self.items.get(item).copied()
    }
}

pub(crate) fn strip_comment(line: &str) -> &str {
    let mut in_single = false;
    let mut in_double = false;
    let mut previous = ' ';
    for (position, character) in line.char_indices() {
        match character {
            '\'' if !in_double => in_single = !in_single,
            '"' if !in_single => in_double = !in_double,
            '#' if !in_single && !in_double && previous.is_whitespace() => {
                return &line[..position];
            }
            _ => {}
        }
        previous = character;
    }
    line
}

pub(crate) fn key_of(trimmed: &str) -> Option<String> {
    if trimmed.starts_with('-') {
        return None;
    }
    let colon = trimmed.find(':')?;
    let after = &trimmed[colon + 1..];
    if !(after.is_empty() || after.starts_with(' ')) {
        return None;
    }
    let key = trimmed[..colon].trim();
    Some(key.trim_matches(|quote| quote == '"' || quote == '\'').to_string())
}

#[cfg(test)]
mod tests {
    use super::line_of_key;

    const TEXT: &str = "max:\n  cpus: 62 # cores\n  ram: 30\n\n  shm_rate: ram / (ram + swap_size)\nmax_custom_capability:\n  alice:\n    cpus: max\n  # bob:\n  \"bob\":\n    gpus: 2\n";

    #[test]
    fn finds_nested_keys_and_ignores_comments() {
        assert_eq!(line_of_key(TEXT, &["max", "shm_rate"]), Some(5));
        assert_eq!(line_of_key(TEXT, &["max_custom_capability", "alice", "cpus"]), Some(8));
        assert_eq!(line_of_key(TEXT, &["max_custom_capability", "bob", "gpus"]), Some(11));
        assert_eq!(line_of_key(TEXT, &["max", "gpus"]), None);
    }

    #[test]
    fn finds_list_entries_under_a_section() {
        let text =
            "max:\n  cpus: 8\nallow_userIDs: # who\n  - alice # PhD\n  # - eve\n\n  - \"11007\"\nnext:\n  - bob\n";
        assert_eq!(super::line_of_item(text, "allow_userIDs", "alice"), Some(4));
        assert_eq!(super::line_of_item(text, "allow_userIDs", "11007"), Some(7));
        assert_eq!(super::line_of_item(text, "allow_userIDs", "eve"), None);
        assert_eq!(super::line_of_item(text, "allow_userIDs", "bob"), None);
    }

    #[test]
    fn the_index_gives_the_lines_the_searches_give() {
        let text = format!(
            "{TEXT}allow_userIDs: # who\n  - alice # PhD\n  # - eve\n\n  - \"11007\"\n  - alice\nnext:\n  - bob\n"
        );
        let index = super::LineIndex::new(&text, Some("allow_userIDs"));
        for path in [
            &["max", "shm_rate"][..],
            &["max_custom_capability", "alice", "cpus"],
            &["max_custom_capability", "bob", "gpus"],
            &["max_custom_capability", "bob"],
            &["max", "gpus"],
            &["next"],
            &["allow_userIDs"],
        ] {
            assert_eq!(index.key(path), line_of_key(&text, path), "{path:?}");
        }
        for item in ["alice", "11007", "eve", "bob"] {
            assert_eq!(index.item(item), super::line_of_item(&text, "allow_userIDs", item), "{item}");
        }
    }
}
