//! The end-to-end test's container image: a Debian bookworm root file system made by
//! `debootstrap` from Debian's packages (no registry is reachable here, so nothing is pulled),
//! with `openssh-server` and `passwd` — the image contract of `cfg/templates/Dockerfile`:
//! `/bin/sh`, `chpasswd` and `/usr/sbin/sshd`. Imported with `docker import`.
//!
//! Built once and reused: the image carries a label with its recipe, and a later run that finds
//! an image of the same tag and recipe on the engine takes it as it is (a build takes a minute
//! or two and ~250 MB of downloads).

use std::fs;
use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The image's tag.
pub const DEBIAN_SSH_IMAGE: &str = "gpu-booking-test/debian-ssh:bookworm";

use super::images::{RECIPE_LABEL, image_recipe, import_command};

/// The image's recipe (in its label); bump it when the recipe below changes.
const RECIPE: &str = "e2e-v1-debootstrap-minbase-bookworm-openssh-server,passwd";

/// Where the packages come from; `GPU_BOOKING_E2E_MIRROR` overrides it.
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// A build that takes longer than this is stopped (a stalled mirror must not eat CI's time).
const BUILD_LIMIT: Duration = Duration::from_secs(600);

/// Whether the engine holds an image of this tag built from this very recipe.
pub fn cached() -> bool {
    image_recipe(DEBIAN_SSH_IMAGE).as_deref() == Some(RECIPE)
}

/// The image's tag, built if the engine has none of this recipe. `log` receives a line per
/// stage. Err: why it could not be built (the tail of debootstrap's output included).
pub fn debian_ssh_image(debootstrap: &Path, log: &mut dyn FnMut(&str)) -> Result<&'static str, String> {
    if cached() {
        log(&format!("image {DEBIAN_SSH_IMAGE} (recipe {RECIPE}) is already on the engine: reused"));
        return Ok(DEBIAN_SSH_IMAGE);
    }
    let mirror = std::env::var("GPU_BOOKING_E2E_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.to_string());
    let work = tempfile::Builder::new()
        .prefix("gpu-booking-e2e-rootfs-")
        .tempdir()
        .map_err(|error| format!("cannot create a folder for the root file system: {error}"))?;
    let rootfs = work.path().join("rootfs");
    let started = Instant::now();
    log(&format!(
        "$ {} --variant=minbase --include=openssh-server,passwd bookworm {} {mirror}",
        debootstrap.display(),
        rootfs.display()
    ));
    let mut child = Command::new(debootstrap)
        .args(["--variant=minbase", "--include=openssh-server,passwd", "bookworm"])
        .arg(&rootfs)
        .arg(&mirror)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot run {}: {error}", debootstrap.display()))?;
    let mut stdout = child.stdout.take().expect("a piped stdout");
    let mut stderr = child.stderr.take().expect("a piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if started.elapsed() > BUILD_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("debootstrap did not finish within {BUILD_LIMIT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(error) => break Err(format!("waiting for debootstrap: {error}")),
        }
    };
    let output = format!("{}{}", out_reader.join().unwrap_or_default(), err_reader.join().unwrap_or_default());
    let tail: Vec<&str> = output.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => return Err(format!("debootstrap failed ({status}); its last lines:\n{}", tail.join("\n"))),
        Err(reason) => return Err(format!("{reason}; its last lines:\n{}", tail.join("\n"))),
    }
    log(&format!("  → exit 0 ({:.0} s); last line: {}", started.elapsed().as_secs_f64(), tail.last().unwrap_or(&"")));

    // Host keys made by the package's postinst would be shared by every container of the
    // image: removed, the setup script makes each container its own (`ssh-keygen -A`).
    let ssh_dir = rootfs.join("etc/ssh");
    for entry in fs::read_dir(&ssh_dir).map_err(|error| format!("{}: {error}", ssh_dir.display()))? {
        let path = entry.map_err(|error| format!("{}: {error}", ssh_dir.display()))?.path();
        if path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.starts_with("ssh_host_")) {
            fs::remove_file(&path).map_err(|error| format!("remove {}: {error}", path.display()))?;
        }
    }
    fs::create_dir_all(rootfs.join("run/sshd")).map_err(|error| format!("create run/sshd: {error}"))?;
    // The downloaded packages and lists are not needed in the image.
    for folder in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        if let Ok(entries) = fs::read_dir(rootfs.join(folder)) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|kind| kind.is_file()) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }
    for required in ["bin/sh", "usr/sbin/chpasswd", "usr/sbin/sshd"] {
        if fs::symlink_metadata(rootfs.join(required)).is_err() {
            return Err(format!("the debootstrapped tree lacks /{required}: it would not meet the image contract"));
        }
    }

    let imported = Instant::now();
    log(&format!(
        "$ tar -C {} -c . | docker import --change LABEL {RECIPE_LABEL}=… - {DEBIAN_SSH_IMAGE}",
        rootfs.display()
    ));
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["--numeric-owner", "-c", "."])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot run tar: {error}"))?;
    let archive = tar.stdout.take().expect("a piped stdout");
    let import = import_command(DEBIAN_SSH_IMAGE, RECIPE)
        .stdin(Stdio::from(archive))
        .output()
        .map_err(|error| format!("cannot run docker import: {error}"))?;
    let tar_output = tar.wait_with_output().map_err(|error| format!("tar: {error}"))?;
    if !tar_output.status.success() {
        return Err(format!("tar failed: {}", String::from_utf8_lossy(&tar_output.stderr).trim()));
    }
    if !import.status.success() {
        return Err(format!("docker import failed: {}", String::from_utf8_lossy(&import.stderr).trim()));
    }
    log(&format!(
        "  → exit 0 ({:.0} s): {}",
        imported.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&import.stdout).trim()
    ));
    Ok(DEBIAN_SSH_IMAGE)
}
