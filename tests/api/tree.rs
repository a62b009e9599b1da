//! The tree a newcomer reads, checked on the real files: the library's layers
//! import one way and no folder holds a circle, each folder says what it
//! holds and what it may import, files of one size, a short README and guides
//! that say whom they are for.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::layout::{root, rust_files};

/// A module, as its path from the crate's root: `["lifecycle", "purge",
/// "walk"]`; the root is `[]`.
type Module = Vec<String>;

/// Which of one folder's modules each of them uses.
type ImportGraph = BTreeMap<String, BTreeSet<String>>;

/// The import graph of each folder of the crate whose root is `dir`: `a ->
/// b` when anything in `a` (a file, or a folder and all below it) names its
/// sibling `b`, or an item their folder re-exports from `b`. Every way a
/// path can be written counts: `crate::`, `self::`, any number of `super::`
/// (from a file or from its inline test module), names grouped in braces,
/// over several lines. Comments are left out.
fn import_graphs(dir: &Path) -> BTreeMap<Module, ImportGraph> {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    let sources: Vec<(Module, String)> = files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            (module_of(file.strip_prefix(dir).unwrap()), code_of(&text))
        })
        .collect();
    let modules: BTreeSet<Module> = sources.iter().map(|(m, _)| m.clone()).collect();
    // What a folder's own file re-exports, by the name it goes by there:
    // `use stages::{batch_limits, count_only};` in `purge/mod.rs` makes
    // `super::batch_limits` of `purge/walk.rs` a use of `stages`.
    let mut reexports = BTreeMap::<(Module, String), String>::new();
    for (folder, text) in &sources {
        for (at, _) in text.match_indices("use ") {
            if at > 0 && is_path_char(text.as_bytes()[at - 1]) {
                continue;
            }
            for (path, name) in paths_at(text, at + 4, folder.clone()) {
                let Some(child) = path.get(folder.len()) else {
                    continue;
                };
                if modules.contains(&[folder.clone(), vec![child.clone()]].concat()) {
                    reexports.insert((folder.clone(), name), child.clone());
                }
            }
        }
    }
    let mut graphs = BTreeMap::<Module, ImportGraph>::new();
    for module in &modules {
        if let Some((name, folder)) = module.split_last() {
            graphs
                .entry(folder.to_vec())
                .or_default()
                .entry(name.clone())
                .or_default();
        }
    }
    for (module, text) in &sources {
        for path in named_paths(module, text) {
            let Some(at) = (0..module.len().min(path.len())).find(|&i| module[i] != path[i]) else {
                continue;
            };
            let folder = module[..at].to_vec();
            let sibling = [folder.clone(), vec![path[at].clone()]].concat();
            let used = if modules.contains(&sibling) {
                Some(path[at].clone())
            } else {
                reexports.get(&(folder.clone(), path[at].clone())).cloned()
            };
            if let Some(used) = used.filter(|used| *used != module[at]) {
                graphs
                    .entry(folder)
                    .or_default()
                    .entry(module[at].clone())
                    .or_default()
                    .insert(used);
            }
        }
    }
    graphs
}

/// The module a file (relative to its crate's root) holds.
fn module_of(file: &Path) -> Module {
    let mut module: Module = file
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if module.len() == 1 && ["lib", "main"].contains(&module[0].as_str())
        || module.last().is_some_and(|last| last == "mod")
    {
        module.pop();
    }
    module
}

/// A file's text without its comment lines.
fn code_of(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_path_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':' || c == b'$'
}

/// Every path `text` (the code of `module`'s file) names from `crate::`,
/// `self::` or `super::`, as a path from the crate's root. Past an inline
/// `mod tests {`, `self` and `super` start one module deeper.
fn named_paths(module: &Module, text: &str) -> Vec<Module> {
    let inline_at = text
        .match_indices("mod ")
        .find(|(at, _)| {
            let rest = &text[at + 4..];
            let name_len = rest
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                .count();
            name_len > 0 && rest[name_len..].starts_with(" {")
        })
        .map_or(text.len(), |(at, _)| at);
    let mut paths = Vec::new();
    for anchor in ["crate::", "self::", "super::"] {
        for (at, _) in text.match_indices(anchor) {
            if at > 0 && is_path_char(text.as_bytes()[at - 1]) {
                continue;
            }
            let mut scope = module.clone();
            if at > inline_at {
                scope.push("tests".to_owned());
            }
            let (base, start) = match anchor {
                "crate::" => (Vec::new(), at + anchor.len()),
                "self::" => (scope, at + anchor.len()),
                _ => {
                    let ups = text.as_bytes()[at..]
                        .chunks(7)
                        .take_while(|chunk| *chunk == b"super::")
                        .count();
                    let Some(kept) = scope.len().checked_sub(ups) else {
                        continue;
                    };
                    (scope[..kept].to_vec(), at + 7 * ups)
                }
            };
            paths.extend(paths_at(text, start, base).into_iter().map(|(p, _)| p));
        }
    }
    paths
}

/// The paths written at `at` of `text` below `base`, each with the name it
/// goes by (`as` its alias, or its last part): `a::{b, c::{self, d}}`
/// gives `a::b`, `a::c` and `a::c::d`.
fn paths_at(text: &str, at: usize, base: Module) -> Vec<(Module, String)> {
    fn tree(s: &[u8], mut at: usize, path: Module, out: &mut Vec<(Module, String)>) -> usize {
        let skip_blank = |mut at: usize| {
            while at < s.len() && s[at].is_ascii_whitespace() {
                at += 1;
            }
            at
        };
        at = skip_blank(at);
        if s.get(at) == Some(&b'{') {
            at += 1;
            loop {
                at = skip_blank(at);
                match s.get(at) {
                    None => return at,
                    Some(b'}') => return at + 1,
                    Some(b',') => at += 1,
                    Some(_) => at = tree(s, at, path.clone(), out),
                }
            }
        }
        let end = at
            + s[at..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
        let part = String::from_utf8_lossy(&s[at..end]).into_owned();
        if part.is_empty() || part == "self" {
            let name = path.last().cloned().unwrap_or_default();
            out.push((path, name));
            return end;
        }
        let path = [path, vec![part]].concat();
        if s[end..].starts_with(b"::") {
            return tree(s, end + 2, path, out);
        }
        let after = skip_blank(end);
        let name = if s[after..].starts_with(b"as ") {
            let alias = skip_blank(after + 3);
            s[alias..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .map(|c| *c as char)
                .collect()
        } else {
            path.last().cloned().unwrap()
        };
        out.push((path, name));
        end
    }
    let mut out = Vec::new();
    tree(text.as_bytes(), at, base, &mut out);
    out
}

/// A circle of imports among `graph`'s modules, if there is one.
fn import_circle(graph: &ImportGraph) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        graph: &ImportGraph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut circle = path[at..].to_vec();
            circle.push(module.to_owned());
            return Some(circle);
        }
        if !done.insert(module.to_owned()) {
            return None;
        }
        path.push(module.to_owned());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|module| visit(module, graph, &mut Vec::new(), &mut done))
}

/// The library's layers, lowest first (`src/lib.rs` says what each holds):
/// each imports only those before it.
const LAYERS: [&str; 7] = [
    "platform",
    "schema",
    "auth",
    "config",
    "delivery",
    "lifecycle",
    "routes",
];

/// Each import of `graph` (the crate root's) that reaches a layer not below
/// its own, as `from -> to`.
fn upward_imports(graph: &ImportGraph) -> Vec<String> {
    let mut upward = Vec::new();
    for (at, layer) in LAYERS.iter().enumerate() {
        for imported in graph.get(*layer).into_iter().flatten() {
            if !LAYERS[..at].contains(&imported.as_str()) {
                upward.push(format!("{layer} -> {imported}"));
            }
        }
    }
    upward
}

fn module(parts: &[&str]) -> Module {
    parts.iter().map(|p| (*p).to_owned()).collect()
}

#[test]
fn each_layer_of_the_library_imports_only_the_layers_below_it() {
    let graphs = import_graphs(&root().join("src"));
    let layers = &graphs[&Module::new()];
    assert_eq!(
        layers.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from(LAYERS),
        "every module of src/ is a layer of LAYERS, and nothing else sits beside them"
    );
    assert_eq!(upward_imports(layers), Vec::<String>::new());
    // Within a layer, and within each folder of it, modules import each
    // other one way too.
    for (folder, graph) in &graphs {
        assert_eq!(
            import_circle(graph),
            None,
            "src/{}: {graph:?}",
            folder.join("/")
        );
    }
    // The reader sees the edges there are.
    assert!(graphs[&module(&["lifecycle"])]["purge"].contains("sweeps"));
    assert!(graphs[&module(&["lifecycle", "purge"])]["stages"].contains("walk"));
    assert!(layers["routes"].contains("lifecycle"));
}

#[test]
fn the_testkit_has_no_import_circle() {
    let graphs = import_graphs(&root().join("testkit/src"));
    // The server knows its pooler; the pooler knows no server.
    let top = &graphs[&Module::new()];
    assert!(top["postgres"].contains("pgbouncer"), "{top:?}");
    for (folder, graph) in &graphs {
        assert_eq!(
            import_circle(graph),
            None,
            "testkit/src/{}",
            folder.join("/")
        );
    }
}

/// The graphs of a crate made of `files` (path, text), in a folder of its own.
fn graphs_of(files: &[(&str, &str)]) -> BTreeMap<Module, ImportGraph> {
    let dir = std::env::temp_dir().join(format!("tree-check-{}", std::process::id()));
    for (path, text) in files {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    let graphs = import_graphs(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    graphs
}

#[test]
fn the_import_check_itself_reads_every_way_a_path_is_written() {
    let graphs = graphs_of(&[
        ("lib.rs", "mod lifecycle;\nmod platform;\nmod routes;\n"),
        // Up through `super::`, from a folder's file and from deeper.
        (
            "platform/mod.rs",
            "pub mod db;\npub use super::lifecycle::status;\n",
        ),
        ("platform/db/mod.rs", "mod statement;\n"),
        (
            "platform/db/statement.rs",
            "use super::super::super::routes::Page;\n",
        ),
        (
            "lifecycle/mod.rs",
            "pub mod accounts;\npub mod purge;\npub mod status;\npub mod sweeps;\n",
        ),
        // Grouped, nested, over lines; a comment is not an import.
        (
            "lifecycle/sweeps.rs",
            "use crate::lifecycle::{\n    accounts,\n    status::{self, Report},\n};\n\
             // use crate::routes::Page;\n",
        ),
        ("lifecycle/accounts.rs", "pub fn delete() {}\n"),
        ("lifecycle/status.rs", "pub struct Report;\n"),
        // A re-export, aliased, and a sibling of the folder's own parent.
        (
            "lifecycle/purge/mod.rs",
            "mod stages;\nmod walk;\nuse stages::{batch_limits as limits, count};\n\
             pub struct Lease;\nfn f() { super::status::Report; }\n",
        ),
        // The parent's own item is no sibling; its re-export is; an inline
        // test module's `super` is the file itself.
        (
            "lifecycle/purge/walk.rs",
            "use super::{Lease, limits};\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
        ),
        ("lifecycle/purge/stages.rs", "use super::walk;\n"),
        ("routes/mod.rs", "use crate::lifecycle::purge::Lease;\n"),
    ]);
    let set = |names: &[&str]| {
        names
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<BTreeSet<_>>()
    };
    let top = &graphs[&Module::new()];
    assert_eq!(top["platform"], set(&["lifecycle", "routes"]));
    assert_eq!(top["routes"], set(&["lifecycle"]));
    assert_eq!(top["lifecycle"], set(&[]));
    assert_eq!(
        upward_imports(top),
        ["platform -> lifecycle", "platform -> routes"]
    );
    let lifecycle = &graphs[&module(&["lifecycle"])];
    assert_eq!(lifecycle["sweeps"], set(&["accounts", "status"]));
    assert_eq!(lifecycle["purge"], set(&["status"]));
    assert_eq!(import_circle(lifecycle), None);
    let purge = &graphs[&module(&["lifecycle", "purge"])];
    assert_eq!(purge["walk"], set(&["stages"]));
    assert_eq!(purge["stages"], set(&["walk"]));
    assert!(import_circle(purge).is_some());
}

/// The opening `//!` paragraph of a file, joined.
fn opening_doc(file: &Path) -> String {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map_while(|line| line.strip_prefix("//!"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn each_folder_of_the_library_opens_with_what_it_holds_and_may_import() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let folders: Vec<_> = files
        .into_iter()
        .filter(|f| f.ends_with("mod.rs") || f.ends_with("src/lib.rs"))
        .collect();
    assert!(folders.len() >= LAYERS.len(), "{folders:?}");
    for file in folders {
        let doc = opening_doc(&file);
        assert!(
            doc.len() > 80 && doc.contains("import"),
            "{} opens with what it holds and what it may import: {doc:?}",
            file.display()
        );
    }
}

#[test]
fn no_source_file_is_above_600_lines() {
    let mut files = Vec::new();
    for dir in ["src", "api", "dev/src", "testkit/src"] {
        rust_files(&root().join(dir), &mut files);
    }
    let long: Vec<_> = files
        .iter()
        .map(|f| (f, std::fs::read_to_string(f).unwrap().lines().count()))
        .filter(|(_, lines)| *lines > 600)
        .collect();
    assert!(
        long.is_empty(),
        "split these where their parts are: {long:?}"
    );
}

#[test]
fn the_readme_reads_in_minutes_and_each_guide_says_whom_it_is_for() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.lines().count() <= 300,
        "README.md: at most 300 lines"
    );
    let mut guides = 0;
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let first = text
            .lines()
            .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .unwrap_or_default();
        assert!(
            first.starts_with("For "),
            "{} starts with whom it is for: {first:?}",
            path.display()
        );
        guides += 1;
    }
    assert!(guides >= 8, "{guides} guides under docs/");
}
