//! The layers of ARCHITECTURE.md, held: every `crate::` path in the library's code (comments and
//! unit-test modules left out) is read, each module's imports are resolved to the modules they
//! name, and the test fails on an import circle or on a module that reaches into a layer above
//! its own. `cargo modules dependencies --lib --no-fns --no-types --no-traits --no-owns` draws
//! the same graph; this test keeps it true without installing anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may use its own layer and those below.
const LAYERS: &[(&str, &[&str])] = &[
    ("foundation", &["error", "clock", "password", "safe_folder", "gpu"]),
    ("model", &["model"]),
    ("rules", &["rules"]),
    ("store", &["store"]),
    (
        "services",
        &[
            "lab",
            "account",
            "booking",
            "enrollment",
            "check",
            "report",
            "views",
            "login_shell",
            "ownership",
            "volumes",
            "mail",
        ],
    ),
    ("docker", &["docker"]),
    ("monitor", &["monitor"]),
    ("command line", &["cli"]),
];

fn layer_of(module: &str) -> Option<usize> {
    let top = module.split("::").next().unwrap_or(module);
    LAYERS.iter().position(|(_, members)| members.contains(&top))
}

/// Module path (`store::schedule`) → source text without comments and unit-test modules.
fn library_modules() -> BTreeMap<String, String> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    let mut folders = vec![source.clone()];
    while let Some(folder) = folders.pop() {
        for entry in fs::read_dir(&folder).unwrap_or_else(|error| panic!("list {}: {error}", folder.display())) {
            let path: PathBuf = entry.expect("a folder entry").path();
            if path.is_dir() {
                if path != source.join("bin") {
                    folders.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|extension| extension != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&source).expect("under src").with_extension("");
            let mut parts: Vec<String> =
                relative.components().map(|part| part.as_os_str().to_string_lossy().into_owned()).collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            let text = fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
            modules.insert(parts.join("::"), code_only(&text));
        }
    }
    modules
}

/// The text with `//` comments removed and everything from `#[cfg(test)]` on left out (unit
/// tests may reach anywhere; they are at the end of each file).
fn code_only(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or(text);
    text.lines().map(|line| line.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// The modules `code` names through `crate::…` paths, `use crate::a::{b, c::d}` groups included.
fn imports(code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(position) = rest.find("crate::") {
        rest = &rest[position + "crate::".len()..];
        let path_end =
            rest.find(|character: char| !(character.is_alphanumeric() || character == '_' || character == ':'));
        let path = rest[..path_end.unwrap_or(rest.len())].trim_end_matches(':');
        let after = &rest[path_end.unwrap_or(rest.len())..];
        let mut paths = vec![path.to_string()];
        if after.starts_with('{') {
            let group = &after[1..after.find('}').unwrap_or(after.len())];
            paths = group
                .split(',')
                .map(|item| item.split_whitespace().next().unwrap_or("").trim_end_matches(':'))
                .filter(|item| !item.is_empty())
                .map(|item| match (item, path) {
                    ("self", _) => path.to_string(),
                    (_, "") => item.to_string(),
                    _ => format!("{path}::{item}"),
                })
                .collect();
        }
        for path in paths {
            if let Some(module) = longest_module(&path, known) {
                found.insert(module);
            }
        }
    }
    found
}

fn longest_module(path: &str, known: &BTreeSet<String>) -> Option<String> {
    let segments: Vec<&str> = path.split("::").collect();
    (1..=segments.len()).rev().map(|length| segments[..length].join("::")).find(|candidate| known.contains(candidate))
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = library_modules();
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(module, code)| {
            let used = imports(code, &known)
                .into_iter()
                // A module's own children and parents are its own house.
                .filter(|target| {
                    target != module
                        && !target.starts_with(&format!("{module}::"))
                        && !module.starts_with(&format!("{target}::"))
                })
                .collect();
            (module.clone(), used)
        })
        .collect()
}

#[test]
fn every_module_belongs_to_a_layer() {
    let strays: Vec<String> =
        graph().into_keys().filter(|module| !module.is_empty() && layer_of(module).is_none()).collect();
    assert!(strays.is_empty(), "modules in no layer of ARCHITECTURE.md: {strays:?}");
}

#[test]
fn no_module_imports_from_a_layer_above_its_own() {
    let mut upward = Vec::new();
    for (module, used) in graph() {
        let Some(own) = layer_of(&module) else { continue };
        for target in used {
            if let Some(theirs) = layer_of(&target).filter(|theirs| *theirs > own) {
                upward.push(format!("{module} ({}) uses {target} ({})", LAYERS[own].0, LAYERS[theirs].0));
            }
        }
    }
    assert!(upward.is_empty(), "imports that point up:\n{}", upward.join("\n"));
}

#[test]
fn no_import_circle() {
    let graph = graph();
    // Depth-first search; a module met again while still on the path closes a circle.
    fn visit<'a>(
        module: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        circles: &mut Vec<String>,
    ) {
        if let Some(start) = path.iter().position(|step| *step == module) {
            circles.push(format!("{} -> {module}", path[start..].join(" -> ")));
            return;
        }
        if !done.insert(module) {
            return;
        }
        path.push(module);
        for target in graph.get(module).into_iter().flatten() {
            visit(target, graph, path, done, circles);
        }
        path.pop();
    }
    let mut circles = Vec::new();
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done, &mut circles);
    }
    assert!(circles.is_empty(), "import circles:\n{}", circles.join("\n"));
}

#[test]
fn the_reader_sees_imports_written_every_way() {
    let known: BTreeSet<String> =
        ["store", "store::lock", "store::schedule", "model", "rules::capacity", "rules"].map(String::from).into();
    let code = "use crate::store::lock::{ExclusiveLock, LockHeld};\nuse crate::{model::Booking, rules::capacity};\n\
                fn f() { crate::store::schedule::read(x); }";
    assert_eq!(
        imports(code, &known),
        ["store::lock", "model", "rules::capacity", "store::schedule"].map(String::from).into()
    );
}
