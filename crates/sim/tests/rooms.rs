//! The simulator's rooms and which may use which, read from the source: every `crate::` path in
//! code (comments and doc links aside) is an edge from its file's room to the room it names.
//! `cargo test -p ctxtrack-sim --test rooms -- --nocapture` prints the room graph that
//! ARCHITECTURE.md draws.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The room of a source file (path relative to `src/`).
fn room(file: &str) -> &'static str {
    let first = file.split('/').next().unwrap();
    match first {
        "machine" => "machine",
        "run" => "run",
        "os" => "os",
        "design" => "design",
        "lab" => "lab",
        "driver.rs" => "driver",
        "monitor.rs" => "monitor",
        "tracer.rs" => "tracer",
        "fingerprint.rs" => "fingerprint",
        "lib.rs" => "lib",
        "config.rs" | "cost.rs" | "rng.rs" | "program.rs" | "limits.rs" => "base",
        other => panic!("{other}: a file in no room: add it to a room here and in ARCHITECTURE.md"),
    }
}

/// The room a `crate::` path names (`crate::os::rcu::X` → `os`).
fn named(path_head: &str) -> Option<&'static str> {
    Some(match path_head {
        "machine" => "machine",
        "run" => "run",
        "os" => "os",
        "design" => "design",
        "lab" => "lab",
        "driver" => "driver",
        "monitor" => "monitor",
        "tracer" => "tracer",
        "fingerprint" => "fingerprint",
        "config" | "cost" | "rng" | "program" | "limits" => "base",
        // Re-exports at the crate root (`crate::Config`, `crate::Machine`, ...).
        _ => return None,
    })
}

fn files(dir: &Path, base: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, base, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let rel = p
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.push((rel, std::fs::read_to_string(&p).unwrap()));
        }
    }
}

/// Room → rooms it uses, with one example file per edge.
fn graph() -> BTreeMap<&'static str, BTreeMap<&'static str, String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &src, &mut all);
    let mut g: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
    for (file, text) in &all {
        let from = room(file);
        g.entry(from).or_default();
        for line in text.lines() {
            let code = line.split("//").next().unwrap();
            for (i, _) in code.match_indices("crate::") {
                let head: String = code[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if let Some(to) = named(&head) {
                    if to != from {
                        g.entry(from)
                            .or_default()
                            .entry(to)
                            .or_insert_with(|| file.clone());
                    }
                }
            }
            // `super::` inside a room stays in the room; `use super::*` at a room's top would
            // be the crate root, which no room file does.
        }
    }
    g
}

#[test]
fn rooms_use_only_rooms_below_them() {
    let g = graph();
    for (from, tos) in &g {
        let list: Vec<&str> = tos.keys().copied().collect();
        println!("{from:12} -> {}", list.join(", "));
    }
    // What each room may not use: the layers of the simulator, bottom up.
    let forbidden: &[(&str, &[&str])] = &[
        // The state: data and the smallest operations on it, no behaviour.
        (
            "base",
            &["machine", "run", "os", "driver", "lab", "fingerprint"],
        ),
        ("machine", &["run", "os", "driver", "lab", "fingerprint"]),
        // Kernel services act on the state; they never call the engine or a driver.
        ("os", &["run", "driver", "lab", "fingerprint"]),
        // The invariants read the state; they never call a service (a check must not act).
        ("monitor", &["os", "run", "driver", "lab", "fingerprint"]),
        ("tracer", &["os", "run", "driver", "lab", "fingerprint"]),
        // The engine runs the services.
        ("run", &["driver", "lab", "fingerprint"]),
        // Drivers from outside: the driver API, then the lab and the checker's abstraction.
        ("driver", &["lab", "fingerprint"]),
        ("fingerprint", &["run", "driver", "lab"]),
        // Designs are data: their steps name `K` (the state's handle), never a service module.
        ("design", &["os", "run", "driver", "lab", "fingerprint"]),
    ];
    let mut bad = Vec::new();
    for (from, banned) in forbidden {
        for (to, file) in g.get(from).into_iter().flatten() {
            if banned.contains(to) {
                bad.push(format!("{from} -> {to} (src/{file})"));
            }
        }
    }
    // Lab drivers sit apart: only the crate root re-exports them.
    for (from, tos) in &g {
        if *from != "lab" && *from != "lib" {
            if let Some(file) = tos.get("lab") {
                bad.push(format!("{from} -> lab (src/{file})"));
            }
        }
    }
    assert!(bad.is_empty(), "rooms using rooms above them: {bad:#?}");
    // And the rooms the layering names all exist (a rename would make the rules vacuous).
    let rooms: BTreeSet<&str> = g.keys().copied().collect();
    for r in [
        "base", "machine", "os", "run", "driver", "lab", "design", "monitor", "tracer",
    ] {
        assert!(rooms.contains(r), "no room {r}");
    }
}

#[test]
fn the_machine_and_the_kernel_services_form_no_circle() {
    // The issue this layout answers: machine <-> kernel imported each other. Now the machine
    // (state) names no service, and the services name the machine.
    let g = graph();
    assert!(
        !g["machine"].contains_key("os"),
        "machine uses os: {:?}",
        g["machine"].get("os")
    );
    assert!(g["os"].contains_key("machine"));
    assert!(!g["os"].contains_key("run"));
    assert!(g["run"].contains_key("os"));
}
