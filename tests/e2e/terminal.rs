//! A program (here: `ssh -tt booking@…`) on a pseudo-terminal, driven the way a person at a
//! keyboard would: wait for a question on the screen, type the answer.
//!
//! Text is matched with escape sequences and carriage returns removed, so colours and the
//! prompt library's redraws do not split the words. Over SSH the test cannot see when the
//! remote password prompt has switched echo off (the local terminal is in raw mode all along),
//! and a prompt that starts reading flushes what was typed before: a hidden answer is typed
//! after a short pause, and typed again if the next question does not come.

use std::io::ErrorKind;
use std::process::Command;
use std::time::{Duration, Instant};

use expectrl::process::unix::WaitStatus;
use expectrl::session::OsSession;
use expectrl::{Expect, Session};

/// How long one question may take to appear.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Output bytes as a person reads them: escape sequences (CSI, OSC, two-byte ESC x) and
/// carriage returns removed.
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

pub struct Terminal {
    session: OsSession,
    raw: Vec<u8>,
    /// How far into `readable(raw)` the test has read.
    cursor: usize,
    eof: bool,
}

impl Terminal {
    /// Starts `command` on an 80x24 terminal with `TERM=xterm`.
    pub fn start(mut command: Command) -> Terminal {
        command.env("TERM", "xterm").env_remove("NO_COLOR").env_remove("COLUMNS").env_remove("LINES");
        let mut session = Session::spawn(command).expect("start the program on a pseudo-terminal");
        session.get_process_mut().set_window_size(80, 24).expect("set the terminal size");
        Terminal { session, raw: Vec::new(), cursor: 0, eof: false }
    }

    /// Reads whatever the terminal has now; false when nothing came.
    fn pump(&mut self) -> bool {
        if self.eof {
            return false;
        }
        let mut buffer = [0u8; 4096];
        match self.session.try_read(&mut buffer) {
            Ok(0) => {
                self.eof = true;
                true
            }
            Ok(count) => {
                self.raw.extend_from_slice(&buffer[..count]);
                true
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => false,
            // EIO: the other side is closed.
            Err(error) if error.raw_os_error() == Some(5) => {
                self.eof = true;
                true
            }
            Err(error) => panic!("reading the terminal failed: {error}"),
        }
    }

    /// Waits until `needle` is on the screen (past what was read) within `limit`; reads past it.
    fn seen_within(&mut self, needle: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let text = readable(&self.raw);
            let unread = &text[self.cursor.min(text.len())..];
            if let Some(at) = unread.find(needle) {
                self.cursor += at + needle.len();
                return true;
            }
            if self.eof || Instant::now() > deadline {
                return false;
            }
            if !self.pump() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Waits for `needle` on the screen and reads past it; fails the test with the transcript
    /// when it does not come.
    pub fn expect(&mut self, needle: &str) {
        if !self.seen_within(needle, TIMEOUT) {
            let why = if self.eof { "the program ended first" } else { "not seen in time" };
            self.fail(&format!("expected {needle:?}: {why}"));
        }
    }

    /// Types text as is (a `\r` in it is the Enter key).
    pub fn type_text(&mut self, text: &str) {
        self.session.send(text).unwrap_or_else(|error| self.fail(&format!("typing {text:?} failed: {error}")));
    }

    /// Types a line and presses Enter.
    pub fn answer(&mut self, text: &str) {
        self.type_text(&format!("{text}\r"));
    }

    /// Types a hidden answer and Enter, then waits for `next`; types it again (up to three
    /// times) when `next` does not come because the prompt flushed the first keystrokes.
    pub fn answer_hidden(&mut self, secret: &str, next: &str) {
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(400));
            self.answer(secret);
            if self.seen_within(next, Duration::from_secs(5)) {
                return;
            }
        }
        self.fail(&format!("after a hidden answer, {next:?} never came"));
    }

    /// Waits for the program to end; its exit code.
    pub fn finish(&mut self) -> i32 {
        let deadline = Instant::now() + TIMEOUT;
        while !self.eof {
            if Instant::now() > deadline {
                self.fail("the program did not end");
            }
            if !self.pump() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        loop {
            match self.session.get_process().status() {
                Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(WaitStatus::Exited(_, code)) => return code,
                Ok(other) => self.fail(&format!("the program did not exit normally: {other:?}")),
                Err(error) => self.fail(&format!("cannot learn how the program ended: {error}")),
            }
        }
    }

    /// Everything the screen showed, as a person reads it.
    pub fn transcript(&self) -> String {
        readable(&self.raw)
    }

    fn fail(&self, message: &str) -> ! {
        let text = self.transcript();
        let (read, unread) = text.split_at(self.cursor.min(text.len()));
        panic!(
            "{message}\n----- terminal transcript -----\n{read}<<<read up to here>>>{unread}\n-------------------------------"
        )
    }
}
