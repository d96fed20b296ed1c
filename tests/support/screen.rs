//! What a pseudo-terminal shows a person, for the tests that drive programs through one
//! (`book`'s dialogue, `ssh -tt booking@…`).

/// Output bytes as a person reads them: escape sequences (CSI, OSC, two-byte ESC x) and
/// carriage returns removed. An unfinished sequence at the end is dropped; it is read in
/// full next time, because the whole buffer is cleaned again.
pub fn readable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(character) = chars.next() {
        match character {
            '\u{1b}' => match chars.next() {
                Some('[') => {
                    for next in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&next) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    while let Some(next) = chars.next() {
                        if next == '\u{7}' {
                            break;
                        }
                        if next == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\r' => {}
            other => out.push(other),
        }
    }
    out
}
