//! Issue 14's last target: a monitor pass that starts 8 containers takes about as long as the
//! slowest start, not the sum. The real `book` and `monitor` binaries on the real Docker
//! engine, with the busybox image the tests build (`docker import`, no registry): for each
//! run, a fresh root where 1, then 8 students have a booking from now, and the pass that
//! starts them is timed whole (process start to exit); then the pass that ends them (save,
//! stop, remove) is timed the same way. Printed as Markdown: medians, and 8 / 1.
//!
//! Run: `cargo bench --bench monitor_pass` (as root, like the monitor). `PASS_RUNS` sets the
//! runs (default 5). Without an engine it says so and stops.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::images;
use support::lab::Lab;
use support::run::NOW;

/// One hour after [`NOW`]: the end of every booking here.
const END: &str = "2026-11-23 11:00";
const CAPABILITY: &str = "cfg/capability_config.yaml";
const TAGS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    if let Err(reason) = images::docker_engine() {
        println!("No Docker engine here ({reason}): the monitor pass cannot be timed.");
        return;
    }
    images::busybox_image();
    let runs = std::env::var("PASS_RUNS").ok().and_then(|text| text.parse().ok()).unwrap_or(5usize).max(1);
    let mut starts = [Vec::new(), Vec::new()];
    let mut ends = [Vec::new(), Vec::new()];
    let mut engine_starts = [Vec::new(), Vec::new()];
    let mut engine_removals = [Vec::new(), Vec::new()];
    for run in 0..runs {
        for (index, users) in [1usize, 8].into_iter().enumerate() {
            eprintln!("run {} of {runs}: a pass that starts {users} container(s) …", run + 1);
            let (start, end) = time_passes(&format!("bench{run}"), &TAGS[..users]);
            starts[index].push(start);
            ends[index].push(end);
            let (start, removal) = time_engine_alone(users);
            engine_starts[index].push(start);
            engine_removals[index].push(removal);
        }
    }
    let [start_one, start_eight] = starts.map(median);
    let [end_one, end_eight] = ends.map(median);
    let [engine_start_one, engine_start_eight] = engine_starts.map(median);
    let [engine_removal_one, engine_removal_eight] = engine_removals.map(median);
    println!();
    println!(
        "Monitor passes on the real engine, whole process, medians of {runs} runs in seconds; beside them the \
         engine alone doing its part of the same work (`docker start` / `docker rm -f` of created busybox \
         containers, all at once), which is as far as running them concurrently can go on this machine:"
    );
    println!();
    println!("| pass | 1 booking | 8 bookings | 8 / 1 |");
    println!("|---|---|---|---|");
    for (label, one, eight) in [
        ("`monitor`: starts the containers", start_one, start_eight),
        ("the engine alone: `docker start`", engine_start_one, engine_start_eight),
        ("`monitor`: ends them (save, stop, remove)", end_one, end_eight),
        ("the engine alone: `docker rm -f`", engine_removal_one, engine_removal_eight),
    ] {
        println!(
            "| {label} | {:.2} | {:.2} | {:.2} |",
            one.as_secs_f64(),
            eight.as_secs_f64(),
            eight.as_secs_f64() / one.as_secs_f64()
        );
    }
}

/// A fresh root (the test host made big enough for 8 at once) where `tags` students each
/// book 1 CPU and 1 GB from now to [`END`]; the time of the pass that starts their
/// containers, and of the one that ends them.
fn time_passes(name: &str, tags: &[&str]) -> (Duration, Duration) {
    let lab = Lab::docker(name, tags);
    let capability = lab.read(CAPABILITY).replacen("cpus: 2\n", "cpus: 16\n", 1).replacen("ram: 12\n", "ram: 64\n", 1);
    lab.write(CAPABILITY, &capability);
    lab.register_all();
    for user in lab.users() {
        lab.book_new(user, NOW, ("1", "1", "0"), "now", END);
    }
    let started = Instant::now();
    lab.monitor(NOW).expect(0, "the pass that starts the containers");
    let start = started.elapsed();
    for user in lab.users() {
        let container = support::docker::inspect_existing(user, "after the start");
        assert!(support::docker::is_running(&container), "{user}'s container runs");
    }
    let started = Instant::now();
    lab.monitor(END).expect(0, "the pass that ends the bookings");
    let end = started.elapsed();
    for user in lab.users() {
        assert!(support::docker::inspect(user).is_none(), "{user}'s container is removed");
    }
    (start, end)
}

/// `count` busybox containers created beforehand, started all at once with `docker start`,
/// then removed all at once with `docker rm -f`: the time of each step.
fn time_engine_alone(count: usize) -> (Duration, Duration) {
    let names: Vec<String> =
        (0..count).map(|index| format!("gpu-booking-bench-{}-{index}", std::process::id())).collect();
    for name in &names {
        support::docker::docker_ok(&["create", "--name", name, images::BUSYBOX_IMAGE, "sleep", "3600"]);
    }
    let all_at_once = |command: &str| {
        let started = Instant::now();
        let children: Vec<_> = names
            .iter()
            .map(|name| {
                let mut docker = Command::new("docker");
                if command == "rm" {
                    docker.args(["rm", "-f", name]);
                } else {
                    docker.args([command, name]);
                }
                docker.stdout(Stdio::null()).spawn().expect("docker runs")
            })
            .collect();
        for mut child in children {
            assert!(child.wait().expect("docker finishes").success(), "docker {command}");
        }
        started.elapsed()
    };
    (all_at_once("start"), all_at_once("rm"))
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    let middle = times.len() / 2;
    if times.len() % 2 == 1 { times[middle] } else { (times[middle - 1] + times[middle]) / 2 }
}
