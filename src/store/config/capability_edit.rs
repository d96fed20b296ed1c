//! Surgical edits of `cfg/capability_config.yaml`, the admin's hand-written file.
//!
//! Re-serialising the file would throw away the admin's comments, blank lines and key order,
//! so `enroll` edits it as text instead: it finds the lines of `allow_userIDs` and of the
//! user's block under `max_custom_capability` (block-style YAML, as the original's files are
//! written) and adds, replaces or removes only those lines. Every other line stays byte for
//! byte as it was. An inline value the editor does not understand (a non-empty flow mapping,
//! say) is refused with a message rather than guessed at.
//!
//! After editing, [`apply`] parses the new text with [`CapabilityConfig::parse`] and compares
//! its meaning with the old one: the allowed users, every user's block, the defaults and the
//! host must be exactly what the edits intended. Anything else (including a value the checks
//! reject, such as `cpus: 0`) is an error, and the caller writes nothing.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

use super::capability::{CapabilityConfig, LIMIT_FIELDS};
use super::yaml::Limit;
use super::yaml_scalar::scalar;
use crate::error::{FileProblems, Refused, UsageError};
use crate::model::UserId;
use crate::store::yaml_lines::{key_of, strip_comment};

pub const ALLOWED_SECTION: &str = "allow_userIDs";
pub const CUSTOM_SECTION: &str = "max_custom_capability";

/// A key of a limits block with its new value, or `None` to remove the key.
pub type LimitChange = (&'static str, Option<Limit>);

/// One change to the file.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// Append the user to `allow_userIDs` (filling the template's blank `-` entry if present).
    Allow(UserId),
    /// Remove every entry of the user from `allow_userIDs`.
    Disallow(UserId),
    /// Set or remove keys of the user's block under `max_custom_capability`; the block (and the
    /// section) is created when missing, and removed when no key is left in it.
    SetLimits(UserId, Vec<LimitChange>),
    /// Remove the user's block under `max_custom_capability`.
    RemoveLimits(UserId),
}

/// The file's text with `edits` applied, checked to mean exactly what they intend.
/// `shown_path` names the file in messages.
pub fn apply(shown_path: &str, text: &str, edits: &[Edit]) -> Result<String> {
    let before = match CapabilityConfig::parse(shown_path, text) {
        Ok((config, _)) => config,
        Err(problems) => {
            return Err(anyhow::Error::new(FileProblems(problems))
                .context(format!("{shown_path} must be valid before enroll can change it")));
        }
    };
    let mut document = Document::new(text);
    for edit in edits {
        match edit {
            Edit::Allow(user) => document.allow(user)?,
            Edit::Disallow(user) => document.disallow(user)?,
            Edit::SetLimits(user, changes) => document.set_limits(user, changes)?,
            Edit::RemoveLimits(user) => document.remove_block(user)?,
        }
    }
    let edited = document.text();
    let after = match CapabilityConfig::parse(shown_path, &edited) {
        Ok((config, _)) => config,
        Err(problems) => {
            let problems: Vec<String> = problems.iter().map(|problem| problem.message.clone()).collect();
            bail!(UsageError(format!("the change would make {shown_path} invalid: {}", problems.join("; "))));
        }
    };
    check_meaning(shown_path, &before, &after, edits)?;
    Ok(edited)
}

/// Refuses unless `after` is `before` with exactly `edits` applied.
fn check_meaning(shown_path: &str, before: &CapabilityConfig, after: &CapabilityConfig, edits: &[Edit]) -> Result<()> {
    let mut allowed = before.allowed_users.clone();
    let mut custom = custom_entries(before);
    for edit in edits {
        match edit {
            Edit::Allow(user) => allowed.push(user.clone()),
            Edit::Disallow(user) => allowed.retain(|allowed| allowed != user),
            Edit::SetLimits(user, changes) => {
                let mut entry: BTreeMap<&'static str, Limit> =
                    custom.get(user).map(|entry| entry.iter().copied().collect()).unwrap_or_default();
                for (field, value) in changes {
                    match value {
                        Some(value) => entry.insert(field, *value),
                        None => entry.remove(field),
                    };
                }
                if entry.is_empty() {
                    custom.remove(user);
                } else {
                    let ordered = LIMIT_FIELDS
                        .iter()
                        .filter_map(|field| entry.get(field).map(|value| (*field, *value)))
                        .collect();
                    custom.insert(user.clone(), ordered);
                }
            }
            Edit::RemoveLimits(user) => {
                custom.remove(user);
            }
        }
    }
    let refuse = |what: &str| -> Result<()> {
        bail!(Refused(format!(
            "cannot change {shown_path} safely: after the edit, {what} would not be as intended; \
             nothing was written (edit the file by hand, then run enroll check)"
        )))
    };
    if after.allowed_users != allowed {
        return refuse("allow_userIDs");
    }
    if after.max != before.max {
        return refuse("max");
    }
    if after.default_entry() != before.default_entry() {
        return refuse("max_default_capability");
    }
    if custom_entries(after) != custom {
        return refuse("max_custom_capability");
    }
    Ok(())
}

fn custom_entries(config: &CapabilityConfig) -> BTreeMap<UserId, Vec<(&'static str, Limit)>> {
    config
        .users_with_custom_limits()
        .filter_map(|user| config.custom_entry(user).map(|entry| (user.clone(), entry)))
        .filter(|(_, entry)| !entry.is_empty())
        .collect()
}

/// How a limit is written: `max`, a whole number without a fraction, or the shortest decimal.
pub fn format_limit(limit: Limit) -> String {
    match limit {
        Limit::Max => "max".to_string(),
        Limit::Number(value) if value.fract() == 0.0 && value.abs() < 1e15 => format!("{}", value as i64),
        Limit::Number(value) => value.to_string(),
    }
}

/// The file as lines, each with its own line ending, so untouched lines are kept exactly.
struct Document {
    lines: Vec<String>,
    newline: &'static str,
}

/// A user's block under `max_custom_capability`.
struct Block {
    key_line: usize,
    /// Lines holding a `key: value` of the block.
    field_lines: Vec<usize>,
    /// The last line belonging to the block (its key line when it is empty).
    last_line: usize,
}

impl Document {
    fn new(text: &str) -> Self {
        let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
        Document { lines: text.split_inclusive('\n').map(str::to_string).collect(), newline }
    }

    fn text(&self) -> String {
        self.lines.concat()
    }

    fn line(&self, index: usize) -> &str {
        self.lines[index].trim_end_matches(['\n', '\r'])
    }

    /// The line without its comment and trailing spaces.
    fn content(&self, index: usize) -> &str {
        strip_comment(self.line(index)).trim_end()
    }

    fn is_blank(&self, index: usize) -> bool {
        self.line(index).trim().is_empty()
    }

    fn has_content(&self, index: usize) -> bool {
        !self.content(index).trim().is_empty()
    }

    fn indent(&self, index: usize) -> usize {
        let line = self.line(index);
        line.len() - line.trim_start_matches(' ').len()
    }

    fn key(&self, index: usize) -> Option<String> {
        key_of(self.content(index).trim_start())
    }

    fn top_level_key(&self, index: usize) -> Option<String> {
        (self.has_content(index) && self.indent(index) == 0).then(|| self.key(index)).flatten()
    }

    /// The key line of a top-level section and the index just past its last line.
    fn section(&self, name: &str) -> Option<(usize, usize)> {
        let key_line = (0..self.lines.len()).find(|index| self.top_level_key(*index).as_deref() == Some(name))?;
        let end = (key_line + 1..self.lines.len())
            .find(|index| self.top_level_key(*index).is_some())
            .unwrap_or(self.lines.len());
        Some((key_line, end))
    }

    /// The value written after `key:` on the key's own line, without its comment.
    fn inline_value(&self, index: usize) -> &str {
        let content = self.content(index);
        match content.find(':') {
            Some(colon) => content[colon + 1..].trim(),
            None => "",
        }
    }

    /// The line's comment, with the spaces before it (empty when it has none).
    fn trailing_comment(&self, index: usize) -> String {
        let line = self.line(index);
        let kept = strip_comment(line);
        if kept.len() == line.len() {
            return String::new();
        }
        let spacing = &kept[kept.trim_end().len()..];
        format!("{}{}", if spacing.is_empty() { " " } else { spacing }, &line[kept.len()..])
    }

    /// Replaces line `index` with `text`, keeping its line ending.
    fn replace(&mut self, index: usize, text: String) {
        let ending = &self.lines[index][self.line(index).len()..];
        let ending = if ending.is_empty() { self.newline } else { ending };
        self.lines[index] = format!("{text}{ending}");
    }

    fn insert(&mut self, index: usize, texts: Vec<String>) {
        // A last line without a line ending would be glued to the first inserted one.
        if index > 0 && index == self.lines.len() && !self.lines[index - 1].ends_with('\n') {
            self.lines[index - 1].push_str(self.newline);
        }
        let lines: Vec<String> = texts.into_iter().map(|text| format!("{text}{}", self.newline)).collect();
        self.lines.splice(index..index, lines);
    }

    /// Adds a top-level section at the end of the file, after a blank line.
    fn append_section(&mut self, name: &str) -> (usize, usize) {
        let mut texts = Vec::new();
        if !self.lines.is_empty() && !self.is_blank(self.lines.len() - 1) {
            texts.push(String::new());
        }
        texts.push(format!("{name}:"));
        let at = self.lines.len();
        self.insert(at, texts);
        (self.lines.len() - 1, self.lines.len())
    }

    /// Makes the section's key line a plain `name:` when its inline value is an empty
    /// collection or null; returns the entries of a non-empty inline list.
    fn open_section(&mut self, key_line: usize, name: &str) -> Result<Vec<String>> {
        let value = self.inline_value(key_line).to_string();
        if value.is_empty() {
            return Ok(Vec::new());
        }
        let entries = match value.as_str() {
            "~" | "null" | "Null" | "NULL" | "[]" | "{}" => Vec::new(),
            flow if name == ALLOWED_SECTION && flow.starts_with('[') && flow.ends_with(']') => {
                let mut entries = Vec::new();
                for entry in flow[1..flow.len() - 1].split(',') {
                    let entry = entry.trim().trim_matches(|quote| quote == '"' || quote == '\'');
                    if !entry.is_empty() {
                        UserId::parse(entry).map_err(|message| {
                            Refused(format!("cannot edit the inline list {name}: {value}: {message}"))
                        })?;
                        entries.push(entry.to_string());
                    }
                }
                entries
            }
            _ => bail!(Refused(format!(
                "cannot edit {name}: its value {value:?} is written inline; write it as a block (one entry per line)"
            ))),
        };
        let comment = self.trailing_comment(key_line);
        let indent = " ".repeat(self.indent(key_line));
        self.replace(key_line, format!("{indent}{name}:{comment}"));
        Ok(entries)
    }

    /// `- value` lines of a block list: (line, value without quotes and comment).
    fn list_items(&self, from: usize, end: usize) -> Vec<(usize, String)> {
        (from..end)
            .filter_map(|index| {
                let content = self.content(index).trim_start();
                let rest = content.strip_prefix('-')?;
                if !(rest.is_empty() || rest.starts_with(' ')) {
                    return None;
                }
                Some((index, rest.trim().trim_matches(|quote| quote == '"' || quote == '\'').to_string()))
            })
            .collect()
    }

    fn allow(&mut self, user: &UserId) -> Result<()> {
        let (key_line, _) = match self.section(ALLOWED_SECTION) {
            Some(found) => found,
            None => self.append_section(ALLOWED_SECTION),
        };
        let inline = self.open_section(key_line, ALLOWED_SECTION)?;
        let (_, end) = self.section(ALLOWED_SECTION).unwrap_or((key_line, key_line + 1));
        let items = self.list_items(key_line + 1, end);
        let indent = items.first().map_or(2, |(index, _)| self.indent(*index));
        let prefix = " ".repeat(indent);
        // The original's template ships `-  #<user id>`: an empty entry waiting to be filled.
        if inline.is_empty()
            && let Some((index, _)) = items.iter().find(|(_, value)| value.is_empty())
        {
            let comment = self.trailing_comment(*index);
            self.replace(*index, format!("{prefix}- {}{comment}", scalar(user.as_str())));
            return Ok(());
        }
        let at = items.last().map_or(key_line + 1, |(index, _)| index + 1);
        let mut texts: Vec<String> = inline.iter().map(|entry| format!("{prefix}- {}", scalar(entry))).collect();
        texts.push(format!("{prefix}- {}", scalar(user.as_str())));
        self.insert(at, texts);
        Ok(())
    }

    fn disallow(&mut self, user: &UserId) -> Result<()> {
        let Some((key_line, _)) = self.section(ALLOWED_SECTION) else {
            return Ok(());
        };
        // Nobody to remove from an empty list: its line stays as it is.
        if matches!(self.inline_value(key_line), "~" | "null" | "Null" | "NULL" | "[]") {
            return Ok(());
        }
        let inline = self.open_section(key_line, ALLOWED_SECTION)?;
        if !inline.is_empty() {
            let prefix = "  ";
            let texts = inline
                .iter()
                .filter(|entry| *entry != user.as_str())
                .map(|entry| format!("{prefix}- {}", scalar(entry)));
            self.insert(key_line + 1, texts.collect());
        }
        let (_, end) = self.section(ALLOWED_SECTION).unwrap_or((key_line, key_line + 1));
        let matching: Vec<usize> = self
            .list_items(key_line + 1, end)
            .into_iter()
            .filter(|(_, value)| value == user.as_str())
            .map(|(index, _)| index)
            .collect();
        let removed_any = !matching.is_empty() || !inline.is_empty();
        for index in matching.into_iter().rev() {
            self.lines.remove(index);
        }
        // A bare `allow_userIDs:` reads as null, and the original then fails every login
        // (`argument of type 'NoneType' is not iterable`): the last one out leaves `[]`.
        let (_, end) = self.section(ALLOWED_SECTION).unwrap_or((key_line, key_line + 1));
        if removed_any && self.list_items(key_line + 1, end).is_empty() {
            let comment = self.trailing_comment(key_line);
            let indent = " ".repeat(self.indent(key_line));
            self.replace(key_line, format!("{indent}{ALLOWED_SECTION}: []{comment}"));
        }
        Ok(())
    }

    /// The indentation of the user keys under `max_custom_capability` (2 when there are none).
    fn child_indent(&self, key_line: usize, end: usize) -> usize {
        (key_line + 1..end).find(|index| self.has_content(*index)).map_or(2, |index| self.indent(index).max(1))
    }

    fn find_block(&self, user: &UserId) -> Option<Block> {
        let (key_line, end) = self.section(CUSTOM_SECTION)?;
        let child = self.child_indent(key_line, end);
        let block_line = (key_line + 1..end).find(|index| {
            self.has_content(*index)
                && self.indent(*index) == child
                && self.key(*index).as_deref() == Some(user.as_str())
        })?;
        let mut last_line = block_line;
        let mut field_lines = Vec::new();
        for index in block_line + 1..end {
            if self.is_blank(index) {
                continue;
            }
            // A comment at the block's depth belongs to it; content at the user level or
            // above ends it.
            if self.indent(index) <= child {
                if self.has_content(index) {
                    break;
                }
                continue;
            }
            last_line = index;
            if self.has_content(index) {
                field_lines.push(index);
            }
        }
        Some(Block { key_line: block_line, field_lines, last_line })
    }

    fn set_limits(&mut self, user: &UserId, changes: &[LimitChange]) -> Result<()> {
        if self.find_block(user).is_none() {
            // The last change of each key wins, written in the usual key order.
            let values: Vec<(&'static str, Limit)> = LIMIT_FIELDS
                .iter()
                .filter_map(|field| {
                    let (_, value) = changes.iter().rev().find(|(changed, _)| changed == field)?;
                    value.map(|value| (*field, value))
                })
                .collect();
            if values.is_empty() {
                return Ok(());
            }
            return self.add_block(user, &values);
        }
        for (field, value) in changes {
            let Some(block) = self.find_block(user) else {
                bail!("lost track of {CUSTOM_SECTION}.{user} while editing it");
            };
            self.open_block(&block, user)?;
            let existing = block.field_lines.iter().copied().find(|index| self.key(*index).as_deref() == Some(field));
            match (existing, value) {
                (Some(index), Some(value)) => {
                    let comment = self.trailing_comment(index);
                    let indent = " ".repeat(self.indent(index));
                    self.replace(index, format!("{indent}{field}: {}{comment}", format_limit(*value)));
                }
                (Some(index), None) => {
                    self.lines.remove(index);
                }
                (None, Some(value)) => {
                    let indent = block
                        .field_lines
                        .first()
                        .map_or_else(|| self.indent(block.key_line) + 2, |index| self.indent(*index));
                    let at = block.field_lines.last().map_or(block.key_line + 1, |index| index + 1);
                    self.insert(at, vec![format!("{}{field}: {}", " ".repeat(indent), format_limit(*value))]);
                }
                (None, None) => {}
            }
        }
        if self.find_block(user).is_some_and(|block| block.field_lines.is_empty()) {
            self.remove_block(user)?;
        }
        Ok(())
    }

    /// Makes the block's key line a plain `user:` when it reads `user: {}` or `user: ~`.
    fn open_block(&mut self, block: &Block, user: &UserId) -> Result<()> {
        let value = self.inline_value(block.key_line).to_string();
        match value.as_str() {
            "" => Ok(()),
            "~" | "null" | "Null" | "NULL" | "{}" => {
                let comment = self.trailing_comment(block.key_line);
                let line = self.line(block.key_line);
                let colon = strip_comment(line).find(':').unwrap_or(line.len());
                let key_part = line[..colon].to_string();
                self.replace(block.key_line, format!("{key_part}:{comment}"));
                Ok(())
            }
            _ => bail!(Refused(format!(
                "cannot edit {CUSTOM_SECTION}.{user}: its value {value:?} is written inline; write it as a block \
                 (one key per line)"
            ))),
        }
    }

    fn add_block(&mut self, user: &UserId, values: &[(&'static str, Limit)]) -> Result<()> {
        let (key_line, end) = match self.section(CUSTOM_SECTION) {
            Some(found) => found,
            None => self.append_section(CUSTOM_SECTION),
        };
        self.open_section(key_line, CUSTOM_SECTION)?;
        let child = self.child_indent(key_line, end);
        // After the section's last indented line, comments included (the template's section
        // holds only commented examples), so blank lines and comments that introduce the next
        // section stay in front of it.
        let last = (key_line + 1..end).rev().find(|index| !self.is_blank(*index) && self.indent(*index) > 0);
        let has_users = (key_line + 1..end).any(|index| self.has_content(index));
        let mut texts = Vec::new();
        if has_users && last.is_some_and(|index| !self.is_blank(index)) {
            texts.push(String::new());
        }
        texts.push(format!("{}{}:", " ".repeat(child), scalar(user.as_str())));
        for (field, value) in values {
            texts.push(format!("{}{field}: {}", " ".repeat(child + 2), format_limit(*value)));
        }
        self.insert(last.map_or(key_line + 1, |index| index + 1), texts);
        Ok(())
    }

    fn remove_block(&mut self, user: &UserId) -> Result<()> {
        let Some(block) = self.find_block(user) else {
            return Ok(());
        };
        self.lines.drain(block.key_line..=block.last_line);
        // Blocks are separated by blank lines; do not leave two in a row where one was.
        let at = block.key_line;
        if at > 0 && at < self.lines.len() && self.is_blank(at - 1) && self.is_blank(at) {
            self.lines.remove(at);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::examples::user;

    const UPSTREAM: &str = include_str!("../../../tests/fixtures/upstream/cfg/example/capability_config.yaml");
    const TEMPLATE: &str = include_str!("../../../tests/fixtures/template/cfg/capability_config.yaml");

    fn parsed(text: &str) -> CapabilityConfig {
        CapabilityConfig::parse("c.yaml", text).unwrap().0
    }

    /// Lines of `before` that are missing from `after` (as a multiset), for "nothing else changed".
    fn lost_lines(before: &str, after: &str) -> Vec<String> {
        let mut remaining: Vec<&str> = after.split_inclusive('\n').collect();
        let mut lost = Vec::new();
        for line in before.split_inclusive('\n') {
            match remaining.iter().position(|candidate| *candidate == line) {
                Some(position) => {
                    remaining.remove(position);
                }
                None => lost.push(line.to_string()),
            }
        }
        lost
    }

    #[test]
    fn allowing_a_user_in_the_template_fills_the_blank_entry_and_keeps_every_comment() {
        let edited = apply("c.yaml", TEMPLATE, &[Edit::Allow(user("alice"))]).unwrap();
        assert!(edited.contains("allow_userIDs:\n  - alice  #<user id>\n"), "{edited}");
        assert_eq!(lost_lines(TEMPLATE, &edited), vec!["  -  #<user id>\n".to_string()]);
        let edited = apply("c.yaml", &edited, &[Edit::Allow(user("bob"))]).unwrap();
        assert!(edited.contains("  - alice  #<user id>\n  - bob\n\nmax_default_capability:"), "{edited}");
        assert_eq!(parsed(&edited).allowed_users, vec![user("alice"), user("bob")]);
    }

    #[test]
    fn limits_in_the_template_land_after_its_commented_example() {
        let changes = vec![("cpus", Some(Limit::Number(12.0))), ("gpus", Some(Limit::Max))];
        let edits = [Edit::Allow(user("alice")), Edit::SetLimits(user("alice"), changes)];
        let edited = apply("c.yaml", TEMPLATE, &edits).unwrap();
        assert!(
            edited.ends_with("#   if there is not parameter, follow by max_default_capability\n  alice:\n    cpus: 12\n    gpus: max\n"),
            "{edited}"
        );
        let config = parsed(&edited);
        assert_eq!(
            config.custom_entry(&user("alice")),
            Some(vec![("cpus", Limit::Number(12.0)), ("gpus", Limit::Max)])
        );
        assert_eq!(lost_lines(TEMPLATE, &edited), vec!["  -  #<user id>\n".to_string()]);
    }

    #[test]
    fn upstream_edits_touch_only_their_own_lines() {
        let edits = [
            Edit::Allow(user("carol")),
            Edit::SetLimits(user("carol"), vec![("memory", Some(Limit::Number(48.0)))]),
            Edit::SetLimits(
                user("m11007s05-1"),
                vec![("memory", Some(Limit::Number(16.5))), ("gpus", Some(Limit::Number(2.0)))],
            ),
        ];
        let edited = apply("c.yaml", UPSTREAM, &edits).unwrap();
        assert_eq!(lost_lines(UPSTREAM, &edited), vec!["    memory: max\n".to_string()]);
        assert!(edited.contains(
            "  m11007s05-1:\n    cpus: max\n    memory: 16.5\n    gpus: 2\n    # if there is not parameter, follow by max_default_capability\n"
        ));
        assert!(edited.contains("  - m11007s05-3\n  - carol\n\nmax_default_capability:"), "{edited}");
        assert!(edited.ends_with("    gpus: 4\n\n  carol:\n    memory: 48\n"), "{edited}");
    }

    #[test]
    fn removing_a_user_takes_their_entry_and_block_and_nothing_else() {
        let edits = [Edit::Disallow(user("m11007s05-1")), Edit::RemoveLimits(user("m11007s05-1"))];
        let edited = apply("c.yaml", UPSTREAM, &edits).unwrap();
        let lost = lost_lines(UPSTREAM, &edited);
        assert_eq!(
            lost,
            vec![
                "  - m11007s05-1\n",
                "  m11007s05-1:\n",
                "    cpus: max\n",
                "    memory: max\n",
                "    # if there is not parameter, follow by max_default_capability\n",
                "\n"
            ]
        );
        assert!(edited.contains("    gpus: max\n\n  m11007s05-2:\n"), "{edited}");
        let config = parsed(&edited);
        assert!(!config.is_allowed(&user("m11007s05-1")));
        assert_eq!(config.custom_entry(&user("m11007s05-1")), None);
    }

    #[test]
    fn clearing_every_key_removes_the_block() {
        let clear: Vec<LimitChange> = ["cpus", "memory"].iter().map(|field| (*field, None)).collect();
        let edited = apply("c.yaml", UPSTREAM, &[Edit::SetLimits(user("m11007s05-1"), clear)]).unwrap();
        assert_eq!(parsed(&edited).custom_entry(&user("m11007s05-1")), None);
        assert!(!edited.contains("m11007s05-1:"));
    }

    #[test]
    fn missing_and_empty_sections_are_created_or_opened() {
        let minimal = "max:\n  cpus: 8\n  ram: 16\n  gpus: 1\nmax_default_capability: # defaults\n  cpus: 2\n  memory: 4\n  gpus: 0\n";
        let edits =
            [Edit::Allow(user("11007")), Edit::SetLimits(user("11007"), vec![("cpus", Some(Limit::Number(4.0)))])];
        let edited = apply("c.yaml", minimal, &edits).unwrap();
        assert_eq!(
            edited,
            format!("{minimal}\nallow_userIDs:\n  - \"11007\"\n\nmax_custom_capability:\n  \"11007\":\n    cpus: 4\n")
        );

        let inline = format!("{minimal}allow_userIDs: [] # nobody yet\nmax_custom_capability: {{}}\n");
        let edited = apply("c.yaml", &inline, &edits).unwrap();
        assert!(edited.contains(
            "allow_userIDs: # nobody yet\n  - \"11007\"\nmax_custom_capability:\n  \"11007\":\n    cpus: 4\n"
        ));

        let flow = format!("{minimal}allow_userIDs: [a, 'b']\n");
        let edited = apply("c.yaml", &flow, &[Edit::Allow(user("c"))]).unwrap();
        assert_eq!(parsed(&edited).allowed_users, vec![user("a"), user("b"), user("c")]);
    }

    #[test]
    fn a_change_that_makes_the_file_invalid_is_refused() {
        let error =
            apply("c.yaml", UPSTREAM, &[Edit::SetLimits(user("m11007s05"), vec![("cpus", Some(Limit::Number(0.0)))])])
                .unwrap_err();
        assert!(error.to_string().contains("invalid"), "{error}");
        let inline = UPSTREAM
            .replace("  m11007s05-2:\n    cpus: 12\n    memory: 64\n    gpus: 4\n", "  m11007s05-2: {cpus: 12}\n");
        let error = apply("c.yaml", &inline, &[Edit::SetLimits(user("m11007s05-2"), vec![("gpus", Some(Limit::Max))])])
            .unwrap_err();
        assert!(error.to_string().contains("inline"), "{error}");
    }

    #[test]
    fn ids_yaml_1_1_would_misread_are_quoted_as_items_and_keys() {
        let limits = vec![("gpus", Some(Limit::Number(2.0)))];
        let mut text = TEMPLATE.to_string();
        for id in ["0012", "off", "12345678", "2024-01-01", "y"] {
            text = apply("c.yaml", &text, &[Edit::Allow(user(id)), Edit::SetLimits(user(id), limits.clone())]).unwrap();
            assert!(text.contains(&format!("  - \"{id}\"")), "{text}");
            assert!(text.contains(&format!("  \"{id}\":\n    gpus: 2\n")), "{text}");
        }
        let config = parsed(&text);
        assert_eq!(config.allowed_users.len(), 5);
        // Quoted entries are found again to be removed.
        let edited = apply("c.yaml", &text, &[Edit::Disallow(user("off")), Edit::RemoveLimits(user("off"))]).unwrap();
        assert!(!edited.contains("off"), "{edited}");
        assert_eq!(lost_lines(&text, &edited).len(), 4, "{edited}");
    }

    #[test]
    fn the_last_user_out_leaves_an_empty_list_not_null() {
        let text = UPSTREAM.replace("allow_userIDs:\n", "allow_userIDs: # who may book\n");
        let everyone: Vec<Edit> = ["m11007s05", "m11007s05-1", "m11007s05-2", "m11007s05-3"]
            .iter()
            .map(|id| Edit::Disallow(user(id)))
            .collect();
        let edited = apply("c.yaml", &text, &everyone).unwrap();
        assert!(edited.contains("allow_userIDs: [] # who may book\n\nmax_default_capability:"), "{edited}");
        assert!(parsed(&edited).allowed_users.is_empty());
        // An empty list stays as it is when nobody is removed from it.
        assert_eq!(apply("c.yaml", &edited, &[Edit::Disallow(user("bob"))]).unwrap(), edited);
        let edited = apply("c.yaml", &edited, &[Edit::Allow(user("bob"))]).unwrap();
        assert!(edited.contains("allow_userIDs: # who may book\n  - bob\n"), "{edited}");
    }

    #[test]
    fn windows_line_endings_are_kept() {
        let text = TEMPLATE.replace('\n', "\r\n");
        let edited = apply("c.yaml", &text, &[Edit::Allow(user("alice"))]).unwrap();
        assert!(!edited.replace("\r\n", "").contains('\n'), "{edited:?}");
    }
}
