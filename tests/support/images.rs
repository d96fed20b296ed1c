//! Test images for the tests that run against the real Docker engine. There is no registry
//! here, so images are built locally: a busybox root file system (the host's static
//! `/bin/busybox`, from Debian's `busybox-static`) imported with `docker import`.
//!
//! The image deliberately lacks `sshd` and `chpasswd`: the monitor must start its container
//! all the same and warn about what is missing.
//!
//! Also here: whether a Docker engine answers at all, so a test can skip (or, with
//! `GPU_BOOKING_REQUIRE_DOCKER=1`, fail) when there is none.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The busybox image's tag.
pub const BUSYBOX_IMAGE: &str = "gpu-booking-test/busybox:latest";

/// Where the static busybox is taken from.
const BUSYBOX_BINARY: &str = "/bin/busybox";

/// The applets linked in `/bin` (the setup script and the tests need these; `sshd` and
/// `chpasswd` are left out on purpose).
const APPLETS: &[&str] = &["sh", "sleep", "cat", "printf", "grep", "mkdir", "chmod", "touch", "echo", "ls"];

/// Bumped whenever the recipe below changes, so an image built from an older recipe is
/// rebuilt rather than reused.
const RECIPE_VERSION: &str = "1";

/// The image label holding the recipe's fingerprint, so an image of the same recipe is reused.
pub const RECIPE_LABEL: &str = "gpu-booking-test.recipe";

/// Set to `1` to make a missing engine a failure instead of a skip (CI with Docker).
pub const REQUIRE_DOCKER: &str = "GPU_BOOKING_REQUIRE_DOCKER";

/// `Ok` when `docker info` succeeds; otherwise why not. Asked once per test run.
pub fn docker_engine() -> Result<(), String> {
    static ANSWER: OnceLock<Result<(), String>> = OnceLock::new();
    ANSWER
        .get_or_init(|| match Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output() {
            Err(error) => Err(format!("cannot run `docker info`: {error}")),
            Ok(output) if !output.status.success() => Err(format!(
                "`docker info` failed: {}",
                String::from_utf8_lossy(&output.stderr).lines().next().unwrap_or("no message").trim()
            )),
            Ok(_) => Ok(()),
        })
        .clone()
}

/// Whether a test that needs the engine may go on: prints a skip line and returns `false`
/// when there is none, or panics when `GPU_BOOKING_REQUIRE_DOCKER=1`.
pub fn engine_or_skip(test: &str) -> bool {
    match docker_engine() {
        Ok(()) => true,
        Err(reason) => skip_or_fail(test, &format!("no Docker engine ({reason})")),
    }
}

/// The name of the test running on this thread (the test harness names each test's thread
/// after it), for the lines that say why a test skipped.
pub fn current_test() -> String {
    std::thread::current().name().unwrap_or("a test").to_string()
}

/// What a test does when this host lacks something it needs (`reason`): prints a skip line
/// and returns `false`, or panics when `GPU_BOOKING_REQUIRE_DOCKER=1` (CI, where every test
/// must run).
pub fn skip_or_fail(test: &str, reason: &str) -> bool {
    if std::env::var(REQUIRE_DOCKER).as_deref() == Ok("1") {
        panic!("{test}: {reason}, and {REQUIRE_DOCKER}=1 asks for every test to run");
    }
    eprintln!("{test}: skipped: {reason}");
    false
}

/// Whether `program ARGS…` runs and succeeds: the tool is installed.
pub fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The busybox image's tag, built (once per test run) if the engine does not hold an image
/// of this recipe yet. Panics with the reason when it cannot be built.
pub fn busybox_image() -> &'static str {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(reason) = BUILT.get_or_init(build_busybox) {
        panic!("cannot build the test image {BUSYBOX_IMAGE}: {reason}");
    }
    BUSYBOX_IMAGE
}

/// A fingerprint of what the image is made of: the recipe and the busybox binary used.
fn fingerprint() -> Result<String, String> {
    let metadata = std::fs::metadata(BUSYBOX_BINARY)
        .map_err(|error| format!("{BUSYBOX_BINARY}: {error} (install busybox-static)"))?;
    let modified = metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |duration| duration.as_secs());
    Ok(format!("v{RECIPE_VERSION}-{}-{modified}-{}", metadata.len(), APPLETS.join(".")))
}

fn build_busybox() -> Result<(), String> {
    let fingerprint = fingerprint()?;
    // An image of this very recipe is reused: importing again would only leave the old one
    // dangling on every run.
    if image_recipe(BUSYBOX_IMAGE).as_deref() == Some(fingerprint.as_str()) {
        return Ok(());
    }
    let archive = root_filesystem()?;
    let mut import = import_command(BUSYBOX_IMAGE, &fingerprint)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot run docker import: {error}"))?;
    import
        .stdin
        .take()
        .expect("a piped stdin")
        .write_all(&archive)
        .map_err(|error| format!("cannot send the root file system to docker import: {error}"))?;
    let output = import.wait_with_output().map_err(|error| format!("docker import: {error}"))?;
    if !output.status.success() {
        return Err(format!("docker import failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok(())
}

/// The recipe label of the image `tag` on the engine; `None` when there is no such image.
pub fn image_recipe(tag: &str) -> Option<String> {
    let output = Command::new("docker")
        .args(["image", "inspect", "--format", &format!("{{{{index .Config.Labels \"{RECIPE_LABEL}\"}}}}"), tag])
        .output()
        .ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// `docker import - TAG` of a root file system tar on stdin (the caller connects it), with a
/// standard `PATH`, a shell as the command, and `recipe` in [`RECIPE_LABEL`].
pub fn import_command(tag: &str, recipe: &str) -> Command {
    let mut command = Command::new("docker");
    command.args([
        "import",
        "--change",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--change",
        "CMD [\"/bin/sh\"]",
        "--change",
        &format!("LABEL {RECIPE_LABEL}={recipe}"),
        "-",
        tag,
    ]);
    command
}

/// Removes, when dropped (also when a test fails), the containers named here and every
/// container the monitor labelled with this root.
pub struct TestContainers {
    pub names: Vec<String>,
    pub root_label: String,
}

impl Drop for TestContainers {
    fn drop(&mut self) {
        if docker_engine().is_err() {
            return;
        }
        let mut names = self.names.clone();
        if let Ok(output) = Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("label=gpu-booking.root={}", self.root_label)])
            .output()
        {
            names.extend(String::from_utf8_lossy(&output.stdout).split_whitespace().map(str::to_string));
        }
        if !names.is_empty() {
            let _ = Command::new("docker")
                .arg("rm")
                .arg("-f")
                .args(&names)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A tar archive of the image's root file system.
fn root_filesystem() -> Result<Vec<u8>, String> {
    let busybox = std::fs::read(BUSYBOX_BINARY)
        .map_err(|error| format!("cannot read {BUSYBOX_BINARY}: {error} (install busybox-static)"))?;
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, contents: &[u8], link: Option<&str>| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(contents.len() as u64);
        if let Some(target) = link {
            header.set_link_name(target).map_err(|error| format!("{path}: {error}"))?;
        }
        header.set_cksum();
        builder.append_data(&mut header, path, contents).map_err(|error| format!("{path}: {error}"))
    };
    for folder in ["bin", "etc", "root", "usr", "usr/bin", "usr/sbin", "sbin", "dev", "proc", "sys", "run"] {
        add(folder, tar::EntryType::Directory, 0o755, &[], None)?;
    }
    add("tmp", tar::EntryType::Directory, 0o1777, &[], None)?;
    add("bin/busybox", tar::EntryType::Regular, 0o755, &busybox, None)?;
    for applet in APPLETS {
        add(&format!("bin/{applet}"), tar::EntryType::Symlink, 0o777, &[], Some("busybox"))?;
    }
    add("etc/passwd", tar::EntryType::Regular, 0o644, b"root:x:0:0:root:/root:/bin/sh\n", None)?;
    add("etc/group", tar::EntryType::Regular, 0o644, b"root:x:0:\n", None)?;
    builder.into_inner().map_err(|error| format!("cannot finish the archive: {error}"))
}
