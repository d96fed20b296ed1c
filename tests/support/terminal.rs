//! A program on a pseudo-terminal, driven the way a person at a keyboard would: wait for a
//! question on the screen, type the answer. Used for `book`'s dialogue on a local terminal and
//! for `ssh -tt booking@…`.
//!
//! Text is matched with escape sequences and carriage returns removed, so colours and the
//! prompt library's redraws do not split the words a person reads. Every wait has a deadline;
//! a missed one fails the test with the whole transcript so far, marked where the test had
//! read up to.

use std::io::ErrorKind;
use std::process::Command;
use std::time::{Duration, Instant};

use expectrl::process::unix::WaitStatus;
use expectrl::session::OsSession;
use expectrl::{Expect, Session};

use super::screen::readable;

/// How long one question may take to appear unless the test says otherwise: long enough for a
/// dialogue that runs over SSH.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The pause between reads when the terminal had nothing new: short, so a test does not
/// fall behind the program, yet not a busy loop.
const POLL: Duration = Duration::from_millis(5);

pub struct Terminal {
    session: OsSession,
    raw: Vec<u8>,
    /// How far into `readable(raw)` the test has read.
    cursor: usize,
    eof: bool,
    timeout: Duration,
    print_transcript_at_end: bool,
}

impl Terminal {
    /// Starts `command` on an 80x24 terminal with `TERM=xterm`, without the environment that
    /// would change the colours or the size the program believes it has.
    pub fn start(mut command: Command) -> Terminal {
        command.env("TERM", "xterm").env_remove("NO_COLOR").env_remove("COLUMNS").env_remove("LINES");
        let mut session = Session::spawn(command).expect("start the program on a pseudo-terminal");
        session.get_process_mut().set_window_size(80, 24).expect("set the terminal size");
        Terminal {
            session,
            raw: Vec::new(),
            cursor: 0,
            eof: false,
            timeout: DEFAULT_TIMEOUT,
            print_transcript_at_end: false,
        }
    }

    /// How long each wait may take: a local program answers far sooner than one behind SSH,
    /// and a stuck local test should fail without waiting out the remote deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Terminal {
        self.timeout = timeout;
        self
    }

    /// Whether [`Terminal::end`] prints the transcript, so that a person can read a passing
    /// dialogue too, not only a failing one.
    pub fn printing_transcript_at_end(mut self, print: bool) -> Terminal {
        self.print_transcript_at_end = print;
        self
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

    /// Waits (polling, up to `limit`) until `condition` holds on the unread text; what it
    /// returned, or why it never held.
    fn wait_within<T>(&mut self, limit: Duration, mut condition: impl FnMut(&str) -> Option<T>) -> Result<T, String> {
        let deadline = Instant::now() + limit;
        loop {
            let text = readable(&self.raw);
            if let Some(found) = condition(&text[self.cursor.min(text.len())..]) {
                return Ok(found);
            }
            if self.eof {
                return Err("the program ended first".to_string());
            }
            if Instant::now() > deadline {
                return Err(format!("not seen within {limit:?}"));
            }
            if !self.pump() {
                std::thread::sleep(POLL);
            }
        }
    }

    /// Like [`Terminal::wait_within`] with the terminal's timeout, failing the test when
    /// `condition` never holds.
    fn wait_for<T>(&mut self, what: &str, condition: impl FnMut(&str) -> Option<T>) -> T {
        self.wait_within(self.timeout, condition).unwrap_or_else(|why| self.fail(&format!("{what}: {why}")))
    }

    /// Whether `needle` comes on the screen within `limit`; reads past it when it does.
    fn seen_within(&mut self, needle: &str, limit: Duration) -> bool {
        match self.wait_within(limit, |text| text.find(needle).map(|at| at + needle.len())) {
            Ok(after) => {
                self.cursor += after;
                true
            }
            Err(_) => false,
        }
    }

    /// Waits for `needle` on the screen and reads past it. Returns the text before it.
    pub fn expect(&mut self, needle: &str) -> String {
        let (before, after) = self.wait_for(&format!("expected {needle:?}"), |text| {
            text.find(needle).map(|at| (text[..at].to_string(), at + needle.len()))
        });
        self.cursor += after;
        before
    }

    /// Waits for `needle` and returns the rest of its line (trimmed); reads past the line.
    pub fn expect_line_after(&mut self, needle: &str) -> String {
        let (rest, after) = self.wait_for(&format!("expected a line with {needle:?}"), |text| {
            let at = text.find(needle)? + needle.len();
            let end = text[at..].find('\n')? + at;
            Some((text[at..end].trim().to_string(), end + 1))
        });
        self.cursor += after;
        rest
    }

    /// Types text as is (a `\r` in it is the Enter key).
    pub fn type_text(&mut self, text: &str) {
        self.session.send(text).unwrap_or_else(|error| self.fail(&format!("typing {text:?} failed: {error}")));
    }

    /// Types a line and presses Enter.
    pub fn answer(&mut self, text: &str) {
        self.type_text(&format!("{text}\r"));
    }

    /// Types a hidden password, then Enter, once the prompt on this (local) terminal is
    /// reading. A password prompt flushes pending input when it starts reading (`TCSAFLUSH`),
    /// so keystrokes typed earlier could be lost; echo switched off is the sign that it reads.
    pub fn answer_hidden_when_echo_off(&mut self, password: &str) {
        let deadline = Instant::now() + self.timeout;
        loop {
            let echo = self.session.get_process().get_echo().expect("read the terminal's echo flag");
            if !echo {
                break;
            }
            if Instant::now() > deadline {
                self.fail("the password prompt never switched echo off");
            }
            self.pump();
            std::thread::sleep(POLL);
        }
        self.answer(password);
    }

    /// Types a hidden answer to a remote prompt, then Enter, and waits for `next`. Over SSH the
    /// local terminal stays in raw mode all along, so the remote prompt switching echo off
    /// cannot be seen, and a prompt that starts reading flushes what was typed before: the
    /// answer is typed after a short pause, and again (up to three times) when `next` does
    /// not come.
    pub fn answer_hidden_retrying(&mut self, secret: &str, next: &str) {
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(400));
            self.answer(secret);
            if self.seen_within(next, Duration::from_secs(5)) {
                return;
            }
        }
        self.fail(&format!("after a hidden answer, {next:?} never came"));
    }

    /// Waits for the program to end; returns how it ended and what it wrote since the last
    /// match.
    pub fn end(&mut self) -> (WaitStatus, String) {
        let deadline = Instant::now() + self.timeout;
        while !self.eof {
            if Instant::now() > deadline {
                self.fail("the program did not end");
            }
            if !self.pump() {
                std::thread::sleep(POLL);
            }
        }
        let text = readable(&self.raw);
        let rest = text[self.cursor.min(text.len())..].to_string();
        self.cursor = text.len();
        if self.print_transcript_at_end {
            eprintln!("----- terminal transcript -----\n{text}\n-------------------------------");
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.session.get_process().status() {
                Ok(WaitStatus::StillAlive) if Instant::now() < deadline => std::thread::sleep(POLL),
                Ok(status) => return (status, rest),
                Err(error) => self.fail(&format!("cannot learn how the program ended: {error}")),
            }
        }
    }

    /// Waits for the program to exit; returns its exit code and what it wrote since the last
    /// match.
    pub fn finish(&mut self) -> (i32, String) {
        match self.end() {
            (WaitStatus::Exited(_, code), rest) => (code, rest),
            (other, _) => self.fail(&format!("the program did not exit normally: {other:?}")),
        }
    }

    /// Everything the screen showed, as a person reads it.
    pub fn transcript(&self) -> String {
        readable(&self.raw)
    }

    pub fn fail(&self, message: &str) -> ! {
        let text = self.transcript();
        let (read, unread) = text.split_at(self.cursor.min(text.len()));
        panic!(
            "{message}\n----- terminal transcript -----\n{read}<<<read up to here>>>{unread}\n-------------------------------"
        )
    }
}
