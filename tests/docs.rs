//! The reference pages in docs/ against the code they describe: every config key
//! is accepted by the parser and every `ProgramDef` field is documented, every
//! subcommand and flag of `infantd` and `infantctl` is on the CLI page, every RPC
//! of the proto is on the gRPC page, the README's links lead somewhere, and the
//! project speaks for itself.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The field names of `pub struct NAME { ... }` in Rust source `text`.
fn struct_fields(text: &str, name: &str) -> Vec<String> {
    let start = text
        .find(&format!("pub struct {name} {{"))
        .unwrap_or_else(|| panic!("no `pub struct {name}`"));
    let body = &text[start..];
    let end = body.find("\n}").expect("the struct's closing brace");
    body[..end]
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub "))
        .filter_map(|rest| rest.split_once(':'))
        .map(|(field, _)| field.trim().to_owned())
        .collect()
}

/// The rows of the first Markdown table whose header starts with `| FIRST |`:
/// each row's cells, trimmed.
fn table_rows(text: &str, first: &str) -> Vec<Vec<String>> {
    let header = format!("| {first} |");
    let mut lines = text.lines().skip_while(|line| !line.starts_with(&header));
    assert!(lines.next().is_some(), "no table headed {header}");
    lines
        .skip(1) // the `| --- |` line
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            line.trim_matches('|')
                .split(" | ")
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect()
}

/// `` `key` `` to `key`.
fn unquote(cell: &str) -> &str {
    cell.trim_matches('`')
}

/// A value of the documented type for `key`, valid for a program of `kind`.
fn sample_value(key: &str, type_cell: &str) -> String {
    match key {
        "kind" => "\"KIND\"".into(),
        "command" => r#"["true"]"#.into(),
        "cwd" => "\"/\"".into(),
        "listen" => r#"["tcp://127.0.0.1:0"]"#.into(),
        "after" => r#"["dep"]"#.into(),
        "ready" => "\"grace\"".into(),
        "restart" => "\"on-failure\"".into(),
        "umask" => "\"022\"".into(),
        "stop_signal" => "\"INT\"".into(),
        "rlimits" => "{ nofile = 1024, core = \"unlimited\" }".into(),
        "max_memory" => "\"512MiB\"".into(),
        "success_exit_codes" => "[0, 3]".into(),
        "log" => "\"off\"".into(),
        _ if type_cell.starts_with("size") => "\"1MiB\"".into(),
        _ if type_cell.starts_with("duration") => "\"1s\"".into(),
        _ if type_cell.starts_with("integer") => "1".into(),
        _ if type_cell.starts_with("bool") => "true".into(),
        _ if type_cell.starts_with("table of strings") => r#"{ A = "b" }"#.into(),
        _ if type_cell.starts_with("array of strings") => r#"["x"]"#.into(),
        _ if type_cell.starts_with("string") => "\"x\"".into(),
        _ => panic!("configuration.md: `{key}` has a type this test does not know: {type_cell}"),
    }
}

#[test]
fn every_config_key_is_documented_and_every_documented_key_is_accepted() {
    let page = read("docs/configuration.md");
    let rows = table_rows(&page, "key");
    let documented: BTreeSet<&str> = rows.iter().map(|row| unquote(&row[0])).collect();

    let fields = struct_fields(&read("server/spec.rs"), "ProgramDef");
    assert!(
        fields.len() >= 20,
        "found only {fields:?} in ProgramDef: has server/spec.rs changed shape?"
    );
    for field in &fields {
        assert!(
            documented.contains(field.as_str()),
            "`{field}` (a field of ProgramDef) is missing from docs/configuration.md's key table"
        );
    }

    // Each documented key, with a value of its documented type, in a program of
    // some kind: the parser must accept it (an unknown key is an error).
    for row in &rows {
        let key = unquote(&row[0]);
        let value = sample_value(key, &row[1]);
        let mut errors = Vec::new();
        for kind in ["child", "cluster", "once"] {
            let mut text = String::from("[program.dep]\ncommand = [\"true\"]\n\n[program.p]\n");
            text.push_str(&format!("kind = \"{kind}\"\n"));
            if key != "command" {
                text.push_str("command = [\"true\"]\n");
            }
            if key != "kind" {
                text.push_str(&format!("{key} = {}\n", value));
            }
            let text = text.replace("KIND", kind);
            match infant::daemon::config::parse(&text) {
                Ok(_) => {
                    errors.clear();
                    break;
                }
                Err(error) => errors.push(format!("{kind}: {error}")),
            }
        }
        assert!(
            errors.is_empty(),
            "docs/configuration.md documents `{key}` ({}), which the parser refuses: {errors:?}",
            row[1]
        );
    }
}

/// `BIN ARGS --help`'s output.
fn help(bin: &str, args: &[&str]) -> String {
    let output = Command::new(bin)
        .args(args)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
    assert!(output.status.success(), "{bin} {args:?} --help failed");
    String::from_utf8(output.stdout).expect("help is UTF-8")
}

/// Every `--flag` in a help text.
fn long_flags(help: &str) -> BTreeSet<String> {
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|word| word.starts_with("--") && word.len() > 2)
        .map(|word| {
            let name: String = word[2..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            format!("--{name}")
        })
        .filter(|flag| flag.len() > 2 && flag != "--help" && flag != "--version")
        .collect()
}

/// The subcommands listed under `Commands:` in a clap help text.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_subcommand_and_flag_is_on_the_cli_page() {
    let page = read("docs/cli.md");
    let infantctl = env!("CARGO_BIN_EXE_infantctl");
    let top = help(infantctl, &[]);
    let commands = subcommands(&top);
    assert!(
        commands.len() >= 9,
        "found only {commands:?} in `infantctl --help`"
    );
    let mut missing = Vec::new();
    for command in &commands {
        // A row of the command table starts with the command.
        if !page.contains(&format!("| `{command}")) {
            missing.push(format!("infantctl {command}"));
        }
        for flag in long_flags(&help(infantctl, &[command])) {
            if !page.contains(&format!("`{flag}")) && !page.contains(&format!(" {flag}")) {
                missing.push(format!("infantctl {command} {flag}"));
            }
        }
    }
    let infantd = env!("CARGO_BIN_EXE_infantd");
    for flag in long_flags(&help(infantd, &[])) {
        if !page.contains(&format!("`{flag}")) {
            missing.push(format!("infantd {flag}"));
        }
    }
    assert!(missing.is_empty(), "missing from docs/cli.md: {missing:?}");
}

#[test]
fn every_rpc_is_on_the_grpc_page() {
    let page = read("docs/grpc.md");
    let proto = read("proto/infant.proto");
    let rpcs: Vec<&str> = proto
        .lines()
        .filter_map(|line| line.trim().strip_prefix("rpc "))
        .filter_map(|rest| rest.split('(').next())
        .map(str::trim)
        .collect();
    let services: Vec<&str> = proto
        .lines()
        .filter_map(|line| line.trim().strip_prefix("service "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert!(rpcs.len() >= 10, "found only {rpcs:?} in the proto");
    let missing: Vec<String> = rpcs
        .iter()
        .map(|rpc| format!("`{rpc}`"))
        .chain(services.iter().map(|s| format!("`infant.v1.{s}`")))
        .filter(|name| !page.contains(name.as_str()))
        .collect();
    assert!(missing.is_empty(), "missing from docs/grpc.md: {missing:?}");
}

/// The relative link targets (`](path)` or `](path#anchor)`) of a Markdown text.
fn relative_links(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|target| !target.contains("://") && !target.starts_with('#'))
        .map(|target| target.split('#').next().unwrap_or(target).to_owned())
        .collect()
}

/// Pages the README links that are written separately and may not be here yet.
// docs/containment.md comes with the containment work; drop it from this list
// once it has landed.
const PENDING: &[&str] = &[];

#[test]
fn the_readme_and_the_docs_link_to_files_that_exist() {
    let mut pages: Vec<PathBuf> = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).expect("docs/") {
        let path = entry.expect("docs/ entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    let readme = read("README.md");
    assert!(
        readme.lines().count() <= 320,
        "the README is a front page; reference goes to docs/"
    );
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).expect("read page");
        for target in relative_links(&text) {
            let resolved = page.parent().expect("a folder").join(&target);
            let pending = PENDING.iter().any(|p| resolved == root().join(p));
            if !resolved.exists() && !pending {
                broken.push(format!("{}: {target}", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links: {broken:?}");
    // Every page in docs/ is reachable from the README.
    for page in &pages[1..] {
        let name = page.file_name().and_then(|n| n.to_str()).expect("a name");
        assert!(
            readme.contains(&format!("docs/{name}")),
            "the README does not link docs/{name}"
        );
    }
}

#[test]
fn the_project_speaks_for_itself() {
    // Built from pieces, so this file does not match itself.
    let banned = [
        ["the ", "seed"].concat(),
        ["DESIGN", ".md"].concat(),
        ["these ", "machines"].concat(),
    ];
    let mut files = vec![root().join("README.md"), root().join("BENCHMARKS.md")];
    for folder in [
        "docs", "client", "server", "tests", "examples", "benches", "proto",
    ] {
        collect_files(&root().join(folder), &mut files);
    }
    let mut found = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue; // not text
        };
        let lower = text.to_lowercase();
        for word in &banned {
            if lower.contains(&word.to_lowercase()) {
                found.push(format!("{}: {word}", file.display()));
            }
        }
    }
    assert!(found.is_empty(), "{found:?}");
}

/// Every file under `folder`, skipping build output.
fn collect_files(folder: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            collect_files(&path, files);
        } else {
            files.push(path);
        }
    }
}
